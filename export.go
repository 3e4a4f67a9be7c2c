package kluis

import (
	"context"
	"io"
)

// ExportService hands an organisation everything it holds, to take with it
// (R9): its projects at their latest version with their history, its
// people's profiles, groups and grants, and its audit chain with the signed
// checkpoints that vouch for it, as one ZIP archive (docs/EXPORT.md).
type ExportService interface {
	// ExportOrg writes the organisation's export to w as a ZIP archive,
	// streaming: memory does not grow with the size of the projects. The
	// caller is a manager who authenticated freshly (a support session or
	// an API token never is); the export is recorded as org.export before
	// the first byte is written. Errors before the first byte: forbidden,
	// reauth_required; an error after it means the archive is cut short.
	ExportOrg(ctx context.Context, org OrgID, actor Actor, w io.Writer) error
}

// CanExportOrg: the organisation's managers take its export (R9); support
// staff never do, whatever their grant (R22): a support actor is no manager.
func CanExportOrg(a Actor, org OrgID) bool { return a.IsManager(org) }
