-- Projects and the rights engine (issue 12, R2 R6 R7 R9 R12). A project's
-- name is sealed under the project's own key, so destroying that key when
-- the project leaves the trash leaves nothing readable. Grants relate a
-- person or a group to a project; exactly one of user_id and group_id is
-- set, and the foreign key takes the grant with its subject. Both questions
-- of the rights engine are indexed: "what may this person do to this
-- project" (the primary key, and group_members_user for the groups) and
-- "which projects may this person see" (project_grants_user and
-- project_grants_group, ordered by project id for paging).
ALTER TABLE orgs ADD COLUMN project_access TEXT NOT NULL DEFAULT 'managers';
ALTER TABLE orgs ADD COLUMN trash_days BIGINT NOT NULL DEFAULT 30;

CREATE TABLE projects (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name       BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    deleted_at BIGINT,
    purge_at   BIGINT
);
CREATE INDEX projects_org ON projects (org_id, id);
CREATE INDEX projects_purge ON projects (purge_at) WHERE purge_at IS NOT NULL;

CREATE TABLE user_groups (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name       BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX user_groups_org ON user_groups (org_id, id);

CREATE TABLE group_members (
    group_id TEXT NOT NULL REFERENCES user_groups (id) ON DELETE CASCADE,
    org_id   TEXT NOT NULL,
    user_id  TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members (org_id, user_id, group_id);

CREATE TABLE project_grants (
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    org_id     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    user_id    TEXT REFERENCES users (id) ON DELETE CASCADE,
    group_id   TEXT REFERENCES user_groups (id) ON DELETE CASCADE,
    relation   TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (project_id, subject),
    CHECK ((user_id IS NULL) <> (group_id IS NULL))
);
CREATE INDEX project_grants_user ON project_grants (org_id, user_id, project_id) WHERE user_id IS NOT NULL;
CREATE INDEX project_grants_group ON project_grants (org_id, group_id, project_id) WHERE group_id IS NOT NULL;
