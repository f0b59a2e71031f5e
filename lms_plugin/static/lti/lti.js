/* LTI launch helpers, served locally (the CSP allows no inline script, hospitals block CDNs).
 *
 * 1. Cookie check (pylti1p3's check, our markup): can this frame keep a cookie? Then reload
 *    the login with lti1p3_new_window=1; otherwise offer "open in a new tab".
 * 2. LTI client-side postMessage storage (1EdTech "OIDC Login with LTI Client Side
 *    postMessages"): when the platform sent lti_storage_target, keep state and nonce in the
 *    platform's storage frame at login, and check the state there at launch, so launches
 *    work without third-party cookies (Safari, Chrome with cookies blocked). Only after the
 *    state matched does this page re-post its form: same origin, with the proof the server
 *    put in it (the server refuses the storage path from any other page: login CSRF).
 */
(function () {
  "use strict";

  function storageFrame(target) {
    if (target === "_parent") { return window.parent; }
    try { return window.parent.frames[target] || window.parent; } catch (e) { return window.parent; }
  }

  function send(target, origin, message, timeoutMs) {
    return new Promise(function (resolve, reject) {
      var id = "lms-" + Math.random().toString(36).slice(2);
      message.message_id = id;
      var timer = setTimeout(function () { window.removeEventListener("message", onMessage); reject(new Error("timeout")); }, timeoutMs);
      function onMessage(event) {
        var data = event.data || {};
        if (data.message_id !== id) { return; }
        if (origin !== "*" && event.origin !== origin) { return; }
        clearTimeout(timer);
        window.removeEventListener("message", onMessage);
        if (data.error) { reject(new Error(data.error.code || "error")); } else { resolve(data); }
      }
      window.addEventListener("message", onMessage);
      storageFrame(target).postMessage(message, origin);
    });
  }

  function cookieCheck(el) {
    var cookie = "lti1p3_test_cookie=1; path=/";
    if (el.dataset.secure === "1") { cookie += "; SameSite=None; Secure"; }
    document.cookie = cookie;
    if (document.cookie.indexOf("lti1p3_test_cookie") !== -1) {
      document.cookie = "lti1p3_test_cookie=1; path=/; expires=Thu, 01 Jan 1970 00:00:01 GMT";
      window.location.href = el.dataset.continueUrl;
    } else {
      document.getElementById("lti-loading").hidden = true;
      document.getElementById("lti-blocked").hidden = false;
    }
  }

  function storageLogin(el) {
    var d = el.dataset;
    var put = function (key, value) {
      return send(d.target, d.platformOrigin, {subject: "lti.put_data", key: key, value: value}, 2000);
    };
    Promise.all([put("state_" + d.state, d.state), put("nonce_" + d.nonce, d.nonce)])
      .catch(function () { /* platform without storage: the state cookie may still work */ })
      .then(function () { window.location.href = d.authUrl; });
  }

  function storageLaunch(form) {
    var d = form.dataset;
    send(d.target, d.platformOrigin, {subject: "lti.get_data", key: "state_" + d.state}, 3000)
      .then(function (reply) {
        if (reply.value === d.state) { form.submit(); } else { throw new Error("mismatch"); }
      })
      .catch(function () {
        document.getElementById("lti-loading").hidden = true;
        document.getElementById("lti-failed").hidden = false;
      });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var el;
    if ((el = document.getElementById("lti-cookie-check"))) { cookieCheck(el); }
    if ((el = document.getElementById("lti-storage-login"))) { storageLogin(el); }
    if ((el = document.getElementById("lti-storage-launch"))) { storageLaunch(el); }
  });
})();
