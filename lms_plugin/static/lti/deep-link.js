/* Posts the signed deep-linking answer back to the LMS at once (the button stays as a
 * fallback when scripts are blocked). Served locally: the CSP allows no inline script. */
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("lti-deep-link-return");
    if (form) { form.submit(); }
  });
})();
