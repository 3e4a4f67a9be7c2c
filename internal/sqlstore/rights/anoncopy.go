package rights

import (
	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/keys"
)

// GroupNameField is the field a group's name is sealed for (under the
// organisation key): the anonymised copy (internal/anoncopy) writes groups
// with faked names.
func GroupNameField(org kluis.OrgID, id kluis.GroupID) keys.FieldRef { return groupNameField(org, id) }
