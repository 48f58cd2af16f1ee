// Automata console: the little the pages cannot do without a script.
// Plain JavaScript, no dependencies; every page works without it except the
// upload and live output.
"use strict";

// Forms with data-confirm ask first.
document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

// Text areas with data-json="object" must hold a JSON object (or nothing):
// checked as one types, and the form is not sent while one is invalid.
function jsonProblem(area) {
  const text = area.value.trim();
  if (text === "") return null;
  try {
    const value = JSON.parse(text);
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      return "must be a JSON object ({…})";
    }
    return null;
  } catch (error) {
    return error.message;
  }
}

function checkJson(form) {
  const box = form.querySelector(".json-problem");
  let problem = null;
  for (const area of form.querySelectorAll("textarea[data-json]")) {
    const found = jsonProblem(area);
    area.setAttribute("aria-invalid", found ? "true" : "false");
    if (found && !problem) {
      const label = form.querySelector(`label[for="${area.id}"]`);
      const name = label ? label.firstChild.textContent.trim() : area.name;
      problem = `${name}: ${found}`;
    }
  }
  if (box) {
    box.textContent = problem || "";
    box.hidden = !problem;
  }
  for (const button of form.querySelectorAll("button[type=submit]")) {
    button.disabled = Boolean(problem);
  }
  return !problem;
}

document.addEventListener("input", (event) => {
  if (event.target.matches && event.target.matches("textarea[data-json]")) {
    checkJson(event.target.form);
  }
});
document.addEventListener("submit", (event) => {
  if (!event.defaultPrevented && event.target.querySelector("textarea[data-json]")) {
    if (!checkJson(event.target)) event.preventDefault();
  }
});

// A running run's output, followed over Server-Sent Events; the page
// reloads when the run ends, to show its result.
function followOutput() {
  const output = document.getElementById("output");
  const url = output && output.getAttribute("data-follow");
  if (!url || !window.EventSource) return;
  const state = document.getElementById("output-state");
  const source = new EventSource(url);
  source.onmessage = (event) => {
    const line = document.createElement("span");
    line.className = "line";
    line.textContent = event.data;
    output.append(line, "\n");
    output.scrollTop = output.scrollHeight;
  };
  source.addEventListener("end", () => {
    source.close();
    if (state) state.textContent = "The run ended; loading its result…";
    window.location.reload();
  });
  source.onerror = () => {
    if (state) state.textContent = "Reconnecting to the output stream…";
  };
}

// Uploads: a file from the picker or dropped on the zone, sent with a
// progress bar; the API's answer (or its error message) is shown.
function setUpUpload() {
  const card = document.getElementById("upload");
  if (!card) return;
  const zone = document.getElementById("dropzone");
  const input = document.getElementById("component");
  const name = document.getElementById("config-name");
  const button = document.getElementById("upload-button");
  const progress = document.getElementById("upload-progress");
  const status = document.getElementById("upload-status");
  const max = Number(card.getAttribute("data-max-bytes"));
  let chosen = null;

  const choose = (file) => {
    chosen = file;
    status.textContent = file ? `${file.name}: ${file.size} bytes, ready to upload.` : "";
  };
  input.addEventListener("change", () => choose(input.files[0] || null));
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    choose(event.dataTransfer.files[0] || null);
  });
  button.addEventListener("click", () => {
    if (!chosen) {
      status.textContent = "Choose a .wasm component first.";
      return;
    }
    if (max && chosen.size > max) {
      status.textContent = `${chosen.name} is ${chosen.size} bytes; the server takes at most ${max}.`;
      return;
    }
    const request = new XMLHttpRequest();
    // The name goes in the query string: a header takes Latin-1 only, and
    // names are any Unicode text.
    const named = name.value.trim();
    const target = card.getAttribute("data-upload");
    request.open("POST", named ? `${target}?name=${encodeURIComponent(named)}` : target);
    request.setRequestHeader("Content-Type", "application/wasm");
    // The API's JSON answer, refusals included (console pages are HTML).
    request.setRequestHeader("Accept", "application/json");
    request.setRequestHeader("X-CSRF-Token", card.getAttribute("data-csrf"));
    progress.hidden = false;
    progress.value = 0;
    button.disabled = true;
    status.textContent = `Uploading ${chosen.name}…`;
    request.upload.onprogress = (event) => {
      if (event.lengthComputable) progress.value = Math.round((event.loaded / event.total) * 100);
    };
    request.onload = () => {
      button.disabled = false;
      let answer = null;
      try {
        answer = JSON.parse(request.responseText);
      } catch (error) {
        answer = null;
      }
      if (request.status < 300 && answer && answer.id) {
        progress.value = 100;
        status.textContent = answer.message || `Uploaded as ${answer.id}.`;
        window.location.assign(`${card.getAttribute("data-upload")}/${answer.id}`);
      } else {
        const message = answer && answer.error ? answer.error.message : request.statusText;
        status.textContent = `Upload refused (${request.status}): ${message}`;
      }
    };
    request.onerror = () => {
      button.disabled = false;
      status.textContent = "The upload failed: the server could not be reached.";
    };
    request.send(chosen);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  for (const form of document.querySelectorAll("form")) {
    if (form.querySelector("textarea[data-json]")) checkJson(form);
  }
  followOutput();
  setUpUpload();
});
