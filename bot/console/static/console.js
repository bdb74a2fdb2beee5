// The knowledge console's only script: check an entry as it is typed, confirm destructive
// buttons, and show that a long publish is running. Served from /admin/static (CSP: 'self').
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-confirm]").forEach((button) => {
    button.addEventListener("click", (event) => {
      if (!window.confirm(button.dataset.confirm)) event.preventDefault();
    });
  });

  document.querySelectorAll("button[data-busy]").forEach((button) => {
    button.form.addEventListener("submit", () => {
      // Disabled after the submit has been collected, so the click still counts.
      setTimeout(() => {
        button.disabled = true;
        button.textContent = button.dataset.busy;
      }, 0);
    });
  });

  const form = document.getElementById("entry-form");
  const panel = document.getElementById("check");
  const state = document.getElementById("check-state");
  if (!form || !panel) return;
  let timer = null;
  let sent = 0;
  const check = async () => {
    const mine = ++sent;
    state.textContent = "检查中…";
    const data = new FormData(form);
    try {
      const response = await fetch(panel.dataset.url, {
        method: "POST",
        body: data,
        credentials: "same-origin",
        headers: { "X-CSRF-Token": data.get("csrf") },
      });
      if (mine !== sent) return; // a newer check is on its way
      panel.innerHTML = await response.text(); // rendered and escaped by the server
      const problems = panel.querySelector(".problems");
      state.textContent = problems ? "有问题" : "已检查";
      state.dataset.done = String(mine);
    } catch (error) {
      state.textContent = "检查失败（网络）";
    }
  };
  form.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(check, 600);
  });
});
