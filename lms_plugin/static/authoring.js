// Question editor: show only the fieldsets of the chosen item type (all show without JS).
document.addEventListener("DOMContentLoaded", function () {
  var type = document.getElementById("type");
  if (!type) { return; }
  function update() {
    document.querySelectorAll(".type-fields").forEach(function (box) {
      var wanted = (box.getAttribute("data-types") || "").split(" ");
      box.hidden = wanted.indexOf(type.value) === -1;
    });
  }
  type.addEventListener("change", update);
  update();
});
