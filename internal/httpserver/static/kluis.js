// kluis.js — the little script the pages need (docs/UI.md). No inline
// script is allowed by the Content-Security-Policy; this file is all.
(function () {
  "use strict";

  // The person's time zone, so that the server shows times in it.
  try {
    var tz = Intl.DateTimeFormat().resolvedOptions().timeZone;
    // IANA names (Europe/Amsterdam) are safe in a cookie as they are.
    if (tz && /^[A-Za-z0-9_+\-\/]{1,64}$/.test(tz) && ("; " + document.cookie + ";").indexOf("; kluis_tz=" + tz + ";") < 0) {
      var secure = location.protocol === "https:" ? "; Secure" : "";
      document.cookie = "kluis_tz=" + tz + "; Path=/; Max-Age=31536000; SameSite=Lax" + secure;
    }
  } catch (e) { /* the server shows UTC */ }

  // base64url (no padding) to bytes and back, as WebAuthn's JSON uses.
  function fromB64url(s) {
    var b = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4));
    var out = new Uint8Array(b.length);
    for (var i = 0; i < b.length; i++) { out[i] = b.charCodeAt(i); }
    return out.buffer;
  }
  function toB64url(buf) {
    var bytes = new Uint8Array(buf), s = "";
    for (var i = 0; i < bytes.length; i++) { s += String.fromCharCode(bytes[i]); }
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  // credentialJSON is a PublicKeyCredential as the server reads it.
  function credentialJSON(cred) {
    var r = cred.response, out = {
      id: cred.id, rawId: toB64url(cred.rawId), type: cred.type,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      response: { clientDataJSON: toB64url(r.clientDataJSON) }
    };
    if (cred.authenticatorAttachment) { out.authenticatorAttachment = cred.authenticatorAttachment; }
    if (r.attestationObject) {
      out.response.attestationObject = toB64url(r.attestationObject);
      if (r.getTransports) { out.response.transports = r.getTransports(); }
    } else {
      out.response.authenticatorData = toB64url(r.authenticatorData);
      out.response.signature = toB64url(r.signature);
      if (r.userHandle) { out.response.userHandle = toB64url(r.userHandle); }
    }
    return out;
  }

  document.addEventListener("DOMContentLoaded", function () {
    // A link with a token (invitation, password reset) carries it in the
    // fragment: it goes into the form's hidden field and out of the address
    // bar, so it is never in a request line, the history or a Referer.
    var token = document.querySelector("input[data-token-from-fragment]");
    if (token) {
      var fromLink = "";
      try {
        fromLink = location.hash.length > 1 ? decodeURIComponent(location.hash.slice(1)) : "";
      } catch (e) { /* a damaged link: the form says the token is missing */ }
      if (location.hash) {
        history.replaceState(null, "", location.pathname);
      }
      if (fromLink) {
        token.value = fromLink;
      }
      if (!token.value) {
        var missing = document.getElementById("token-missing");
        if (missing) { missing.hidden = false; }
      }
    }

    // Passkeys and security keys (R17): a form with data-webauthn carries
    // the ceremony's options in data-options; on submit the browser is
    // asked (create: register, get: sign in), and its answer goes into the
    // hidden field named by data-answer before the form is posted.
    document.querySelectorAll("form[data-webauthn]").forEach(function (form) {
      form.addEventListener("submit", function (ev) {
        var answer = form.querySelector("input[name='" + form.getAttribute("data-answer") + "']");
        if (!answer || answer.value) { return; }
        ev.preventDefault();
        var failed = form.querySelector("[data-webauthn-error]");
        if (failed) { failed.hidden = true; }
        var button = form.querySelector("button[type=submit]");
        if (button) { button.disabled = true; }
        var done = function (cred) {
          answer.value = JSON.stringify(credentialJSON(cred));
          form.submit();
        };
        var fail = function () {
          if (button) { button.disabled = false; }
          if (failed) { failed.hidden = false; }
        };
        try {
          if (!window.PublicKeyCredential || !navigator.credentials) { fail(); return; }
          var options = JSON.parse(form.getAttribute("data-options")).publicKey;
          options.challenge = fromB64url(options.challenge);
          if (form.getAttribute("data-webauthn") === "create") {
            options.user.id = fromB64url(options.user.id);
            (options.excludeCredentials || []).forEach(function (c) { c.id = fromB64url(c.id); });
            navigator.credentials.create({ publicKey: options }).then(done, fail);
          } else {
            (options.allowCredentials || []).forEach(function (c) { c.id = fromB64url(c.id); });
            navigator.credentials.get({ publicKey: options }).then(done, fail);
          }
        } catch (e) { fail(); }
      });
    });

    // A screen left open does not keep showing personal data: when the
    // organisation's idle time has passed without a page load, go to the
    // signed-out page (R21). The server has ended the session by then.
    var idle = parseInt(document.body.getAttribute("data-idle-seconds") || "0", 10);
    var to = document.body.getAttribute("data-signed-out");
    if (idle > 0 && to) {
      setTimeout(function () { location.assign(to); }, (idle + 5) * 1000);
    }
  });
})();
