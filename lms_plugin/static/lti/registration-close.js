/* LTI Dynamic Registration: tell the LMS (Moodle 4.1+, Canvas) that registration is over so
   it closes the registration iframe. A file, not inline script: the CSP allows only 'self'. */
(function () {
  "use strict";
  function closeRegistration() {
    if (window.parent && window.parent !== window) {
      window.parent.postMessage({subject: "org.imsglobal.lti.close"}, "*");
    }
  }
  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("lti-close");
    if (button) {
      button.addEventListener("click", closeRegistration);
    }
    var page = document.getElementById("lti-registration");
    if (page && page.getAttribute("data-auto-close") === "true") {
      closeRegistration();
    }
  });
})();
