// Countdowns tick in the browser (the page rendered them already); focus goes to the message.
(function () {
  function show(seconds) {
    var late = seconds < 0, s = Math.abs(seconds);
    var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    var text = d ? d + "天" + h + "小时" : h ? h + "小时" + m + "分" : m + "分";
    return [(late ? "超期 " : "剩余 ") + text, late];
  }
  function tick() {
    document.querySelectorAll("[data-due]").forEach(function (el) {
      if (!el.dataset.due) return;
      var r = show(Math.round((Date.parse(el.dataset.due) - Date.now()) / 1000));
      el.textContent = r[0];
      el.classList.toggle("late", r[1]);
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var flash = document.getElementById("flash");
    if (flash) { flash.setAttribute("tabindex", "-1"); flash.focus(); }
    tick();
    setInterval(tick, 30000);
    // 采用此建议: a queue suggestion fills its ticket's dispatch form; focus goes to the reason
    document.querySelectorAll("button.use-suggestion").forEach(function (button) {
      button.addEventListener("click", function () {
        var form = document.getElementById(button.dataset.form);
        if (!form) return;
        form.elements.primary_unit_id.value = button.dataset.primary || "";
        form.elements.category.value = button.dataset.category || "";
        form.elements.rule_id.value = button.dataset.rule || "";
        form.elements.reason.focus();
      });
    });
  });
})();
