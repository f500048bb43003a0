// Switchboard's behaviour in the browser, kept out of the templates so that a Content-Security-Policy can
// forbid inline script: the header's menu on small screens and the Copy buttons of one-time secrets. Every
// page works without it: the menu then stays open, and a secret is selected and copied by hand.
// Loaded in <head> without defer, so the "js" class is set before the first paint (no flash of the menu).
document.documentElement.classList.add("js");

document.addEventListener("DOMContentLoaded", () => {
  const toggle = document.querySelector(".menu-toggle");
  if (toggle) {
    const open = (value) => toggle.setAttribute("aria-expanded", String(value));
    toggle.addEventListener("click", () => open(toggle.getAttribute("aria-expanded") !== "true"));
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && toggle.getAttribute("aria-expanded") === "true") {
        open(false);
        toggle.focus();
      }
    });
  }

  for (const button of document.querySelectorAll("button[data-copy]")) {
    const source = document.getElementById(button.dataset.copy);
    button.hidden = false;
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(source.textContent.trim());
        button.textContent = "Copied";
      } catch {
        window.getSelection().selectAllChildren(source);
        button.textContent = "Selected: press Ctrl+C";
      }
    });
  }
});
