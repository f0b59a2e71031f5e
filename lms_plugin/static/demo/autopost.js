/* The demo LMS's auth endpoint answers with a form that posts the signed id_token to the
 * tool's launch URL (OIDC response_mode=form_post); this submits it at once. The button
 * stays as a fallback when scripts are blocked. Served locally: the CSP allows no inline
 * script. */
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("demo-autopost");
    if (form) { form.submit(); }
  });
})();
