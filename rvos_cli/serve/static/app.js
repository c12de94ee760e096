// rvos serve: the page's logic. Plain JS, no libraries, talks only to the server that sent it.
"use strict";

const byId = (id) => document.getElementById(id);
const page = {
  info: null,       // GET /info
  job: null,        // the job this page follows
  upload: null,     // the XMLHttpRequest while a video uploads
  events: null,     // the EventSource of the job
  progressSeen: [], // frames_done values as they arrived (read by the browser test)
};
window.rvosProgress = page.progressSeen;

function showMessage(text, kind = "error") {
  const box = byId("message");
  box.textContent = text;
  box.className = kind;
  box.hidden = false;
}

function clearMessage() {
  byId("message").hidden = true;
  byId("message").textContent = "";
}

function paletteColour(index) {
  const palette = (page.info && page.info.palette) || ["#888888"];
  return palette[index % palette.length];
}

function recolourSentences() {
  document.querySelectorAll("#sentences .swatch").forEach((swatch, index) => {
    swatch.style.background = paletteColour(index);
  });
}

function addSentence(text = "") {
  const item = document.createElement("li");
  item.innerHTML =
    '<div class="sentence-row"><span class="swatch"></span>' +
    '<input type="text" class="sentence" maxlength="500" placeholder="e.g. a person riding a bike">' +
    '<button type="button" class="remove" title="Remove this sentence">×</button></div>';
  item.querySelector("input").value = text;
  item.querySelector(".remove").addEventListener("click", () => {
    if (document.querySelectorAll("#sentences li").length > 1) item.remove();
    recolourSentences();
  });
  byId("sentences").appendChild(item);
  recolourSentences();
  return item.querySelector("input");
}

async function loadInfo() {
  const response = await fetch("/info");
  page.info = await response.json();
  const { model, limits, videos } = page.info;
  byId("model-info").textContent =
    `Model: ${model.preset || "?"} (${model.checkpoint || "checkpoint"}) on ${model.device || "?"}, ${model.dtype || ""}`;
  let text = `Uploads up to ${limits.max_upload_mb} MB`;
  if (limits.max_seconds) text += `; at most ${limits.max_seconds} s of video per job`;
  byId("limits").textContent = text + ".";
  if (videos.length) {
    const select = byId("video-choice");
    for (const name of videos) select.add(new Option(name, name));
    byId("server-videos").hidden = false;
  }
  recolourSentences();
}

function setBusy(busy) {
  byId("segment").disabled = busy;
  byId("cancel").hidden = !busy;
}

function formatSeconds(seconds) {
  if (seconds < 60) return `${Math.round(seconds)} s`;
  const minutes = Math.floor(seconds / 60);
  return `${minutes} min ${String(Math.round(seconds % 60)).padStart(2, "0")} s`;
}

function buildForm() {
  const form = new FormData();
  const file = byId("video-file").files[0];
  const choice = byId("video-choice").value;
  if (file) {
    const limitMb = page.info ? page.info.limits.max_upload_mb : Infinity;
    if (file.size > limitMb * 1e6) {
      throw new Error(`${file.name}: the file is larger than the ${limitMb} MB this server accepts`);
    }
    form.append("video", file, file.name);
  } else if (choice) {
    form.append("video_name", choice);
  } else {
    throw new Error("choose a video file to upload first");
  }
  document.querySelectorAll("#sentences .sentence").forEach((input) => form.append("sentences", input.value));
  form.append("start", byId("start").value);
  form.append("end", byId("end").value);
  return form;
}

function submitJob(event) {
  event.preventDefault();
  clearMessage();
  byId("result").hidden = true;
  let form;
  try {
    form = buildForm();
  } catch (error) {
    showMessage(error.message);
    return;
  }
  setBusy(true);
  page.progressSeen.length = 0;
  byId("status").hidden = false;
  byId("queue-text").textContent = "Uploading…";
  byId("progress").removeAttribute("value");
  byId("progress-text").textContent = "";
  const request = new XMLHttpRequest();
  page.upload = request;
  request.open("POST", "/jobs");
  request.responseType = "json";
  request.upload.onprogress = (e) => {
    if (e.lengthComputable) byId("progress-text").textContent = `uploaded ${Math.round((100 * e.loaded) / e.total)} %`;
  };
  request.onload = () => {
    page.upload = null;
    if (request.status === 201) {
      follow(request.response);
    } else {
      const reason = request.response && request.response.error;
      finishWithError(reason || `the server answered ${request.status}`);
    }
  };
  request.onerror = () => {
    page.upload = null;
    finishWithError("the upload failed: the server closed the connection (is the file too large?)");
  };
  request.onabort = () => {
    page.upload = null;
    finishWithError("Upload cancelled.", "info");
  };
  request.send(form);
}

function finishWithError(text, kind = "error") {
  setBusy(false);
  byId("status").hidden = true;
  showMessage(text, kind);
}

function follow(job) {
  page.job = job;
  render(job);
  const events = new EventSource(`/jobs/${job.id}/events`);
  page.events = events;
  events.onmessage = (message) => {
    const update = JSON.parse(message.data);
    render(update);
    if (["done", "failed", "cancelled"].includes(update.state)) {
      events.close();
      finished(update);
    }
  };
  events.addEventListener("gone", () => {
    events.close();
    finishWithError("The job's results were removed from the server.");
  });
}

function render(job) {
  page.job = job;
  const status = byId("queue-text");
  if (job.state === "queued") {
    status.textContent = job.queue_position > 0
      ? `Waiting in the queue: ${job.queue_position} job${job.queue_position > 1 ? "s" : ""} ahead of this one.`
      : "Starting…";
  } else if (job.state === "running") {
    status.textContent = `Segmenting ${job.video}…`;
  }
  const bar = byId("progress");
  bar.max = Math.max(job.frames_total, 1);
  bar.value = job.frames_done;
  let text = `${job.frames_done} / ${job.frames_total} frames`;
  if (job.frames_per_second) text += ` · ${job.frames_per_second.toFixed(1)} frames/s`;
  if (job.eta_seconds !== null && job.state === "running") text += ` · about ${formatSeconds(job.eta_seconds)} left`;
  byId("progress-text").textContent = text;
  const seen = page.progressSeen;
  if (seen.length === 0 || seen[seen.length - 1] !== job.frames_done) seen.push(job.frames_done);
}

function finished(job) {
  setBusy(false);
  page.events = null;
  if (job.state === "done") {
    byId("queue-text").textContent = `Done: ${job.frames_done} frames.`;
    showResult(job);
  } else if (job.state === "failed") {
    byId("status").hidden = true;
    showMessage(job.error || "the job failed");
  } else {
    byId("status").hidden = true;
    showMessage("Cancelled.", "info");
  }
}

function showResult(job) {
  const legend = byId("legend");
  legend.innerHTML = "";
  job.sentences.forEach((sentence, index) => {
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = job.colours[index];
    item.append(swatch, document.createTextNode(sentence));
    legend.appendChild(item);
  });
  const box = byId("preview-box");
  box.innerHTML = "";
  const previewUrl = job.files.preview;
  let preview;
  if (previewUrl.endsWith(".webm")) {
    preview = document.createElement("video");
    Object.assign(preview, { autoplay: true, loop: true, muted: true, playsInline: true });
    preview.title = "Click to pause or play";
    preview.addEventListener("click", () => (preview.paused ? preview.play() : preview.pause()));
  } else {
    preview = document.createElement("img");
    preview.alt = "overlay preview";
  }
  preview.id = "preview";
  preview.src = previewUrl;
  box.appendChild(preview);
  document.querySelectorAll("#downloads a").forEach((link) => {
    link.href = job.files[link.dataset.kind];
    link.setAttribute("download", "");
  });
  byId("result").hidden = false;
}

function cancelJob() {
  if (page.upload) {
    page.upload.abort();
    return;
  }
  if (page.job) fetch(`/jobs/${page.job.id}`, { method: "DELETE" });
}

document.addEventListener("DOMContentLoaded", () => {
  addSentence();
  byId("add-sentence").addEventListener("click", () => addSentence().focus());
  byId("job-form").addEventListener("submit", submitJob);
  byId("cancel").addEventListener("click", cancelJob);
  byId("video-file").addEventListener("change", () => { byId("video-choice").value = ""; });
  loadInfo().catch(() => showMessage("could not reach the server"));
});
