package httpserver

import (
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kluis/kluis"
)

// Files and versions of a project in the API (R9, R10, R11). Files are
// always downloads: never rendered from kluis's origin, so an uploaded page
// or script cannot run with a signed-in person's cookies.

// transferTime is how long one upload or download may take, past the
// server's own read and write timeouts meant for JSON.
const transferTime = 4 * time.Hour

type fileJSON struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
	ETag string `json:"etag"`
}

type fileAnswer struct {
	File fileJSON `json:"file"`
}

type treeEntryJSON struct {
	Path       string    `json:"path"`
	Size       int64     `json:"size"`
	ETag       string    `json:"etag"`
	ModifiedAt time.Time `json:"modified_at"`
	ModifiedBy string    `json:"modified_by"`
}

type treeAnswer struct {
	Files []treeEntryJSON `json:"files"`
}

type versionJSON struct {
	Number       int       `json:"number"`
	Author       string    `json:"author"`
	AuthorName   string    `json:"author_name"`
	At           time.Time `json:"at"`
	Message      string    `json:"message"`
	Files        int       `json:"files"`
	RestoredFrom *int      `json:"restored_from,omitempty"`
}

func toVersionJSON(v kluis.Version) versionJSON {
	j := versionJSON{Number: v.Number, Author: string(v.Author), AuthorName: v.AuthorName, At: v.At, Message: v.Message, Files: v.Files}
	if v.RestoredFrom > 0 {
		from := v.RestoredFrom
		j.RestoredFrom = &from
	}
	return j
}

type versionAnswer struct {
	Version versionJSON `json:"version"`
}

type versionsAnswer struct {
	Versions []versionJSON `json:"versions"`
}

type versionRequest struct {
	Message string `json:"message"`
}

type diffAnswer struct {
	Added   []string `json:"added"`
	Changed []string `json:"changed"`
	Removed []string `json:"removed"`
}

// quoteETag and unquoteETag move between the service's ETags and HTTP's.
func quoteETag(etag string) string { return `"` + etag + `"` }

func unquoteETag(h string) string {
	h = strings.TrimSpace(h)
	h = strings.TrimPrefix(h, "W/")
	return strings.Trim(h, `"`)
}

// versionNumber reads {n}; anything but a positive number names no version.
func versionNumber(r *http.Request) (int, error) {
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 1 {
		return 0, kluis.ErrNotFound
	}
	return n, nil
}

// handlePutFile stores the request's raw body as the file at {path…}:
// 201 for a new file, 200 for a replaced one. If-Match and If-None-Match: *
// make the write conditional (412 when the condition fails).
func (s *server) handlePutFile(files kluis.FileService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		rc := http.NewResponseController(w)
		rc.SetReadDeadline(time.Now().Add(transferTime))
		body := http.MaxBytesReader(w, st.rawBody, s.maxFile)
		in := kluis.FileWrite{Path: r.PathValue("path"), Body: body}
		if im := r.Header.Get("If-Match"); im != "" {
			in.IfMatch = unquoteETag(im)
			if im == "*" {
				in.IfMatch, in.IfNoneMatch = "", false
			}
		}
		switch inm := r.Header.Get("If-None-Match"); {
		case inm == "*":
			in.IfNoneMatch = true
		case inm != "":
			return kluis.Invalid(map[string]string{"If-None-Match": `only "*" is supported on a write`})
		}
		info, created, err := files.PutFile(r.Context(), st.org.ID, st.actor, projectID(r), in)
		if err != nil {
			return err
		}
		w.Header().Set("ETag", quoteETag(info.ETag))
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		writeJSON(w, status, fileAnswer{fileJSON{Path: info.Path, Size: info.Size, ETag: info.ETag}})
		return nil
	}
}

// attachment sets what makes a file a download that no browser renders in
// kluis's origin.
func attachment(h http.Header, info kluis.FileInfo) {
	name := info.Path[strings.LastIndexByte(info.Path, '/')+1:]
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	h.Set("Content-Security-Policy", "sandbox")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("ETag", quoteETag(info.ETag))
	h.Set("Accept-Ranges", "bytes")
}

// handleGetFile serves a file of the working tree, or of version {n} when
// the route has one, as a download with ETag and Range (206).
func handleGetFile(files kluis.FileService, versioned bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		version := 0
		if versioned {
			var err error
			if version, err = versionNumber(r); err != nil {
				return err
			}
		}
		if r.Method == http.MethodHead {
			info, err := files.FindFile(r.Context(), st.org.ID, st.actor, projectID(r), version, r.PathValue("path"))
			if err != nil {
				return err
			}
			attachment(w.Header(), info)
			w.Header().Set("Content-Length", strconv.FormatInt(info.Size, 10))
			w.Header().Set("Last-Modified", info.ModifiedAt.UTC().Format(http.TimeFormat))
			w.WriteHeader(http.StatusOK)
			return nil
		}
		info, content, err := files.OpenFile(r.Context(), st.org.ID, st.actor, projectID(r), version, r.PathValue("path"))
		if err != nil {
			return err
		}
		defer content.Close()
		http.NewResponseController(w).SetWriteDeadline(time.Now().Add(transferTime))
		attachment(w.Header(), info)
		http.ServeContent(w, r, "", info.ModifiedAt, content)
		return nil
	}
}

func handleDeleteFile(files kluis.FileService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		ifMatch := ""
		if im := r.Header.Get("If-Match"); im != "" && im != "*" {
			ifMatch = unquoteETag(im)
		}
		if err := files.DeleteFile(r.Context(), st.org.ID, st.actor, projectID(r), r.PathValue("path"), ifMatch); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

// handleTree lists the working tree, or version {n}'s, under ?prefix=.
func handleTree(files kluis.FileService, versioned bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		version := 0
		if versioned {
			var err error
			if version, err = versionNumber(r); err != nil {
				return err
			}
		}
		list, err := files.FindTree(r.Context(), st.org.ID, st.actor, projectID(r), version, r.URL.Query().Get("prefix"))
		if err != nil {
			return err
		}
		out := treeAnswer{Files: make([]treeEntryJSON, 0, len(list))}
		for _, f := range list {
			out.Files = append(out.Files, treeEntryJSON{Path: f.Path, Size: f.Size, ETag: f.ETag, ModifiedAt: f.ModifiedAt, ModifiedBy: string(f.ModifiedBy)})
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
}

func handleCreateVersion(versions kluis.VersionService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in versionRequest
		if err := decode(r, &in); err != nil {
			return err
		}
		st := state(r)
		v, err := versions.CreateVersion(r.Context(), st.org.ID, st.actor, projectID(r), in.Message)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusCreated, versionAnswer{toVersionJSON(v)})
		return nil
	}
}

func handleListVersions(versions kluis.VersionService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		list, err := versions.FindVersions(r.Context(), st.org.ID, st.actor, projectID(r))
		if err != nil {
			return err
		}
		out := versionsAnswer{Versions: make([]versionJSON, 0, len(list))}
		for _, v := range list {
			out.Versions = append(out.Versions, toVersionJSON(v))
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
}

// handleDiff compares version {n} with ?against= (default: the one before).
func handleDiff(versions kluis.VersionService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		n, err := versionNumber(r)
		if err != nil {
			return err
		}
		against := 0
		if v := r.URL.Query().Get("against"); v != "" {
			if against, err = strconv.Atoi(v); err != nil || against < 1 {
				return kluis.Invalid(map[string]string{"against": "must be a version number"})
			}
		}
		st := state(r)
		d, err := versions.DiffVersions(r.Context(), st.org.ID, st.actor, projectID(r), n, against)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, diffAnswer{Added: d.Added, Changed: d.Changed, Removed: d.Removed})
		return nil
	}
}

func handleRestoreVersion(versions kluis.VersionService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		n, err := versionNumber(r)
		if err != nil {
			return err
		}
		st := state(r)
		v, err := versions.RestoreVersion(r.Context(), st.org.ID, st.actor, projectID(r), n)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusCreated, versionAnswer{toVersionJSON(v)})
		return nil
	}
}

// handleVersionZip streams version {n} as a ZIP download. Once the first
// byte is sent, a failure can only cut the download short (the log has
// it); the client then holds a broken archive, never a wrong one.
func handleVersionZip(versions kluis.VersionService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		n, err := versionNumber(r)
		if err != nil {
			return err
		}
		st := state(r)
		http.NewResponseController(w).SetWriteDeadline(time.Now().Add(transferTime))
		zw := &lazyHeader{w: w, name: "version-" + strconv.Itoa(n) + ".zip"}
		if err := versions.WriteVersionZip(r.Context(), st.org.ID, st.actor, projectID(r), n, zw); err != nil {
			if !zw.started {
				return err
			}
			st.log.Error("version download cut short", "err", err.Error())
			panic(http.ErrAbortHandler)
		}
		return nil
	}
}

// lazyHeader sends a download's headers with its first byte, so an error
// before it still gets the contract's error answer.
type lazyHeader struct {
	w       http.ResponseWriter
	name    string
	started bool
}

func (l *lazyHeader) Write(p []byte) (int, error) {
	if !l.started {
		l.started = true
		h := l.w.Header()
		h.Set("Content-Type", "application/zip")
		h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": l.name}))
		h.Set("Content-Security-Policy", "sandbox")
		l.w.WriteHeader(http.StatusOK)
	}
	return l.w.Write(p)
}

var _ io.Writer = (*lazyHeader)(nil)
