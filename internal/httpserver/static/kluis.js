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
