// files.js — uploading to a project (docs/UI.md, A project). The page has
// a form with a file input, and the whole page takes files dropped on it.
// Each file goes to the API as it is: PUT /api/v1/orgs/{org}/projects/{id}
// /files/{path} with the raw bytes, on the session cookie (same origin, so
// Cross-Origin-Protection lets it pass). XMLHttpRequest, not fetch, because
// only it reports upload progress. When every file is in, the page loads
// again with a notice; the server lists what is there.
(function () {
  "use strict";

  document.addEventListener("DOMContentLoaded", function () {
    var zone = document.getElementById("upload-zone");
    var form = document.getElementById("upload");
    if (!zone || !form) { return; }
    var input = document.getElementById("upload-file");
    var folder = document.getElementById("folder");
    var button = form.querySelector("button[type=submit]");
    var wrap = document.getElementById("upload-progress-wrap");
    var bar = document.getElementById("upload-progress");
    var status = document.getElementById("upload-status");
    var api = zone.getAttribute("data-api");
    var busy = false;
    button.disabled = false;

    function say(text, bad) {
      status.textContent = text;
      status.className = bad ? "field-error" : "";
    }

    // pathOf is where a file goes: the folder typed (if any), then the
    // file's name, or for a dropped folder its path inside it. Each
    // segment is escaped on its own; the server checks the path.
    function pathOf(file) {
      var name = file.relativePath || file.webkitRelativePath || file.name;
      var dir = (folder && folder.value || "").trim().replace(/^\/+|\/+$/g, "");
      var full = dir ? dir + "/" + name : name;
      return full.split("/").map(encodeURIComponent).join("/");
    }

    // put sends one file and calls done(null) or done(message).
    function put(file, sentBefore, total, done) {
      var xhr = new XMLHttpRequest();
      xhr.open("PUT", api + pathOf(file));
      xhr.setRequestHeader("Content-Type", "application/octet-stream");
      xhr.upload.onprogress = function (ev) {
        if (ev.lengthComputable && total > 0) {
          bar.value = Math.floor(100 * (sentBefore + ev.loaded) / total);
        }
      };
      xhr.onload = function () {
        if (xhr.status === 200 || xhr.status === 201) { return done(null); }
        var key = "data-failed";
        if (xhr.status === 413) { key = "data-too-large"; }
        if (xhr.status === 403) { key = "data-forbidden"; }
        var why = zone.getAttribute(key);
        // The API's field problem (a path it does not take) says which.
        try {
          var e = JSON.parse(xhr.responseText).error;
          if (e && e.code === "invalid_input" && e.fields && e.fields.path) { why += " (" + e.fields.path + ")"; }
        } catch (ignored) { /* not JSON: the general message stands */ }
        done(file.name + ": " + why);
      };
      xhr.onerror = function () { done(file.name + ": " + zone.getAttribute("data-failed")); };
      xhr.send(file);
    }

    function upload(files) {
      if (busy) { return; }
      if (!files.length) {
        say(zone.getAttribute("data-choose"), true);
        return;
      }
      busy = true;
      button.disabled = true;
      var total = 0;
      for (var i = 0; i < files.length; i++) { total += files[i].size; }
      bar.value = 0;
      wrap.hidden = false;
      say(zone.getAttribute("data-sending").replace("%d", String(files.length)), false);
      var sent = 0, n = 0;
      (function next() {
        if (n === files.length) {
          bar.value = 100;
          // The page's notice, as a form's redirect would leave it.
          document.cookie = "kluis_notice=uploaded; Path=/; Max-Age=60; SameSite=Lax" + (location.protocol === "https:" ? "; Secure" : "");
          location.reload();
          return;
        }
        var f = files[n];
        put(f, sent, total, function (err) {
          if (err) {
            busy = false;
            button.disabled = false;
            say(err, true);
            return;
          }
          sent += f.size;
          n++;
          next();
        });
      })();
    }

    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      upload(Array.prototype.slice.call(input.files || []));
    });

    // Files dropped anywhere on the page; folders are walked, and their
    // files keep their paths inside the dropped folder.
    function walk(entry, prefix, out, done) {
      if (entry.isFile) {
        entry.file(function (f) {
          try { Object.defineProperty(f, "relativePath", { value: prefix + f.name }); } catch (ignored) { /* the name alone */ }
          out.push(f);
          done();
        }, done);
        return;
      }
      if (!entry.isDirectory) { return done(); }
      var reader = entry.createReader(), entries = [];
      (function read() {
        reader.readEntries(function (batch) {
          if (batch.length) {
            entries = entries.concat(Array.prototype.slice.call(batch));
            return read();
          }
          var left = entries.length;
          if (!left) { return done(); }
          entries.forEach(function (e) {
            walk(e, prefix + entry.name + "/", out, function () { if (--left === 0) { done(); } });
          });
        }, done);
      })();
    }

    function dropped(dt) {
      var entries = [];
      if (dt.items) {
        for (var i = 0; i < dt.items.length; i++) {
          var e = dt.items[i].webkitGetAsEntry ? dt.items[i].webkitGetAsEntry() : null;
          if (e) { entries.push(e); }
        }
      }
      if (!entries.length || !entries.some(function (e) { return e.isDirectory; })) {
        return upload(Array.prototype.slice.call(dt.files || []));
      }
      var out = [], left = entries.length;
      entries.forEach(function (e) {
        walk(e, "", out, function () { if (--left === 0) { upload(out); } });
      });
    }

    var depth = 0;
    function hasFiles(ev) {
      return ev.dataTransfer && Array.prototype.indexOf.call(ev.dataTransfer.types || [], "Files") >= 0;
    }
    document.addEventListener("dragenter", function (ev) {
      if (!hasFiles(ev)) { return; }
      depth++;
      zone.classList.add("dragging");
    });
    document.addEventListener("dragleave", function (ev) {
      if (!hasFiles(ev)) { return; }
      depth = Math.max(0, depth - 1);
      if (!depth) { zone.classList.remove("dragging"); }
    });
    document.addEventListener("dragover", function (ev) {
      if (!hasFiles(ev)) { return; }
      ev.preventDefault();
      ev.dataTransfer.dropEffect = "copy";
    });
    document.addEventListener("drop", function (ev) {
      if (!hasFiles(ev)) { return; }
      ev.preventDefault();
      depth = 0;
      zone.classList.remove("dragging");
      dropped(ev.dataTransfer);
    });
  });
})();
