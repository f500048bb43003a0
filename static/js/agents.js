// The chat of an agent's page (templates/agents/chat.html), streamed: the form posts to the page's stream
// (agents.views.agent_chat_stream), which answers with server-sent events, and the answer shows as it comes;
// once whole, its run is added to the runs table. Without script the form posts to the page and waits for
// the whole answer. Text goes in with textContent only: nothing the agent says is read as HTML.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const form = document.querySelector("form[data-stream]");
  if (!form || !window.fetch || !window.TextDecoder) return;
  const log = document.getElementById("conversation");
  const status = document.getElementById("chat-status");
  const send = form.querySelector('button[name="send"]');
  const reset = form.querySelector('button[name="reset"]');
  const field = form.querySelector("textarea[name=message]");

  const say = (role, text) => {
    log.querySelector(".placeholder")?.remove();
    const message = document.createElement("div");
    message.className = `message ${role}`;
    const who = document.createElement("strong");
    who.textContent = role === "user" ? "You" : form.dataset.agent;
    const body = document.createElement("p");
    body.textContent = text;
    message.append(who, body);
    log.append(message);
    return message;
  };

  const addRun = (run) => {
    const body = document.querySelector("#recent-runs tbody");
    if (!body) return;
    body.querySelector("tr.empty")?.remove();
    const row = document.createElement("tr");
    const cells = [
      ["when", run.when],
      [`status-${run.status}`, run.status_label],
      ["", run.cache],
      ["", run.tokens],
      ["", run.cost],
      ["", run.latency],
    ];
    for (const [kind, text] of cells) {
      const cell = document.createElement("td");
      if (kind) cell.className = kind;
      if (kind === "when") {
        const link = document.createElement("a");
        link.href = run.url;
        link.textContent = text;
        link.setAttribute("aria-label", `Run of ${text}`);
        cell.append(link);
      } else {
        cell.textContent = text;
      }
      row.append(cell);
    }
    body.prepend(row);
  };

  // Server-sent events from a fetch body: blocks separated by a blank line, "event:" and "data:" lines.
  async function* events(response) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let name = "message";
        let data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith("event: ")) name = line.slice(7);
          else if (line.startsWith("data: ")) data += line.slice(6);
        }
        yield [name, data ? JSON.parse(data) : {}];
      }
      if (done) return;
    }
  }

  form.addEventListener("submit", async (event) => {
    if (event.submitter && event.submitter.name === "reset") return; // a plain post: the page starts over
    event.preventDefault();
    const text = field.value.trim();
    if (!text) {
      status.textContent = "Write a message first.";
      field.focus();
      return;
    }
    const data = new FormData(form);
    say("user", text);
    const answer = say("assistant", "");
    const words = answer.querySelector("p");
    answer.setAttribute("aria-busy", "true");
    send.disabled = true;
    status.textContent = `${form.dataset.agent} is answering…`;
    let ended = false;
    try {
      const response = await fetch(form.dataset.stream, {
        method: "POST",
        body: data,
        credentials: "same-origin",
        headers: { Accept: "text/event-stream" },
      });
      const type = response.headers.get("Content-Type") || "";
      if (!response.ok || !type.startsWith("text/event-stream")) {
        const problem = type.includes("json") ? (await response.json()).error : "";
        throw new Error(problem || `The answer failed (HTTP ${response.status}).`);
      }
      for await (const [name, payload] of events(response)) {
        if (name === "delta") {
          words.textContent += payload.text;
        } else if (name === "error") {
          throw new Error(payload.detail || "The answer stopped.");
        } else if (name === "done") {
          ended = true;
          addRun(payload);
          field.value = "";
          reset.hidden = false;
          status.textContent = `Answered (${payload.cache}, ${payload.tokens} tokens).`;
        }
      }
      if (!ended) throw new Error("The answer was cut off.");
    } catch (error) {
      answer.classList.add("failed");
      status.textContent = error.message || "The answer failed.";
    } finally {
      answer.setAttribute("aria-busy", "false");
      send.disabled = false;
    }
  });
});
