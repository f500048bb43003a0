// The Memories pages' behaviour, kept out of the templates so that a Content-Security-Policy can forbid inline
// script: a box that ticks every listed memory for a bulk change, and an import's page following its task
// (the task API's progress) until it ends, then reloading to show the outcome. Without it the pages still
// work: memories are ticked one by one, and the import's page has a "Check again" link.
"use strict";

const UNFINISHED = ["queued", "running", "retrying"];

function selectAll(box) {
  const boxes = () => document.querySelectorAll('input[type="checkbox"][name="selected"]');
  if (!boxes().length) return;
  box.hidden = false;
  box.addEventListener("change", () => {
    for (const each of boxes()) each.checked = box.checked;
  });
  document.addEventListener("change", (event) => {
    if (event.target.name === "selected") box.checked = [...boxes()].every((each) => each.checked);
  });
}

function follow(task) {
  const field = (name) => task.querySelector(`[data-field="${name}"]`);
  const progress = task.querySelector("progress");
  let delay = 1000;

  async function poll() {
    try {
      const response = await fetch(task.dataset.pollUrl, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
      if (response.ok) {
        const record = await response.json();
        if (!UNFINISHED.includes(record.status)) {
          window.location.reload(); // the page, drawn by the server, tells how it ended
          return;
        }
        progress.value = record.progress_percent;
        progress.textContent = `${record.progress_percent} %`;
        field("percent").textContent = record.progress_percent;
        field("message").textContent = record.progress_message ? ` · ${record.progress_message}` : "";
        const status = record.status.charAt(0).toUpperCase() + record.status.slice(1);
        if (field("status").textContent !== status) field("status").textContent = status;
      }
    } catch {
      // the network or the server hiccuped: try again later
    }
    delay = Math.min(delay * 1.25, 5000);
    window.setTimeout(poll, delay);
  }

  window.setTimeout(poll, delay);
}

document.addEventListener("DOMContentLoaded", () => {
  const box = document.querySelector("[data-select-all]");
  if (box) selectAll(box);
  const task = document.querySelector("[data-import-task]");
  if (task && UNFINISHED.includes(task.dataset.status)) follow(task);
});
