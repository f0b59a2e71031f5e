/* The countdown of a time-limited quiz (issue 12.8). Served locally: the CSP allows no
 * inline script. The server sends the seconds left (data-seconds-left, from the attempt's
 * deadline) so the learner's clock does not matter; this counts down from page load and,
 * when the time is up, submits the answers given so far (confirm_unanswered=1: nothing is
 * left to ask). The server enforces the deadline itself (quizzes.services, 30 s grace), so
 * a blocked script only loses the convenience, never the rule. Screen readers hear the time
 * at 5 minutes and 1 minute, not every second. */
(function () {
  "use strict";

  function text(seconds) {
    var m = Math.floor(seconds / 60), s = seconds % 60;
    return m + ":" + (s < 10 ? "0" : "") + s;
  }

  document.addEventListener("DOMContentLoaded", function () {
    var timer = document.getElementById("quiz-timer");
    var clock = document.getElementById("quiz-timer-clock");
    var announce = document.getElementById("quiz-timer-announce");
    if (!timer || !clock) { return; }
    var form = document.getElementById(timer.getAttribute("data-form"));
    var total = parseInt(timer.getAttribute("data-seconds-left"), 10);
    if (!form || isNaN(total)) { return; }
    var started = Date.now();
    var said = {};
    var sent = false;

    function submitNow() {
      if (sent) { return; }
      sent = true;
      var confirm = document.createElement("input");
      confirm.type = "hidden";
      confirm.name = "confirm_unanswered";
      confirm.value = "1";
      form.appendChild(confirm);
      if (announce) { announce.textContent = "Time is up: submitting your answers."; }
      form.submit();
    }

    function tick() {
      var left = Math.max(0, total - Math.floor((Date.now() - started) / 1000));
      clock.textContent = "Time remaining: " + text(left) +
        (left < 60 ? " (less than a minute)" : "");
      if (left <= 60) { timer.classList.add("quiz-timer-urgent"); }
      [300, 60].forEach(function (mark) {
        if (left <= mark && left > 0 && !said[mark] && total > mark) {
          said[mark] = true;
          if (announce) {
            announce.textContent = (mark / 60) + " minute" + (mark === 60 ? "" : "s") +
              " left. Your answers are submitted when the time runs out.";
          }
        }
      });
      if (left <= 0) { submitNow(); return; }
      window.setTimeout(tick, 1000);
    }
    form.addEventListener("submit", function () { sent = true; });
    tick();
  });
})();
