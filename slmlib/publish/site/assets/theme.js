// Loaded in every page's head: applies the saved theme (localStorage "slm-theme") before the
// page is drawn, else the system's preference. site.js wires the toggle button.
(function () {
  var theme = null;
  try { theme = window.localStorage.getItem("slm-theme"); } catch (e) { theme = null; }
  if (theme !== "dark" && theme !== "light") {
    theme = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }
  document.documentElement.setAttribute("data-theme", theme);
})();
