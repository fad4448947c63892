/* Drumbeat dashboard behaviour. Loaded as a file (CSP: script-src 'self'); no inline scripts, no
 * eval. htmx itself is configured by <meta name="htmx-config"> in base.html.
 *
 * - CSRF: every htmx request that changes state carries X-CSRFToken from <meta name="csrf-token">.
 * - Toasts: flashed messages, and `HX-Trigger: {"toast": {"message": "...", "level": "success"}}`
 *   from any htmx response, land in #toasts; they can be dismissed and fade after a while.
 * - Errors: an htmx request that fails (4xx/5xx other than 422, or no network) shows a toast
 *   instead of silently doing nothing.
 * - Confirmation: <form data-confirm="Really?"> asks before a plain (non-htmx) submit.
 */
(function () {
  "use strict";

  var SAFE_METHODS = ["GET", "HEAD", "OPTIONS"];
  var TOAST_LIFETIME_MS = 8000;

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  document.addEventListener("htmx:configRequest", function (event) {
    var verb = (event.detail.verb || "get").toUpperCase();
    if (SAFE_METHODS.indexOf(verb) === -1) {
      event.detail.headers["X-CSRFToken"] = csrfToken();
    }
  });

  function dismiss(toast) {
    if (toast && toast.parentNode) {
      toast.parentNode.removeChild(toast);
    }
  }

  function scheduleDismiss(toast, level) {
    // Errors stay until dismissed: they may need reading twice.
    if (level !== "error") {
      window.setTimeout(function () {
        dismiss(toast);
      }, TOAST_LIFETIME_MS);
    }
  }

  function showToast(message, level) {
    var region = document.getElementById("toasts");
    if (!region || !message) {
      return;
    }
    level = ["success", "error", "warning", "info"].indexOf(level) === -1 ? "info" : level;
    var toast = document.createElement("div");
    toast.className = "toast toast--" + level;
    if (level === "error") {
      toast.setAttribute("role", "alert");
    }
    var text = document.createElement("p");
    text.className = "toast__message";
    text.textContent = String(message);
    var close = document.createElement("button");
    close.type = "button";
    close.className = "toast__close";
    close.setAttribute("data-dismiss", "toast");
    close.setAttribute("aria-label", "Dismiss notification");
    close.textContent = "\u00d7";
    toast.appendChild(text);
    toast.appendChild(close);
    region.appendChild(toast);
    scheduleDismiss(toast, level);
  }

  window.Drumbeat = { showToast: showToast };

  document.addEventListener("click", function (event) {
    var button = event.target.closest('[data-dismiss="toast"]');
    if (button) {
      dismiss(button.closest(".toast"));
    }
  });

  // HX-Trigger: {"toast": {"message": ..., "level": ...}} or {"toast": "message"}
  document.addEventListener("toast", function (event) {
    var detail = event.detail || {};
    if (typeof detail.value === "string") {
      showToast(detail.value, "success");
    } else {
      showToast(detail.message, detail.level || "success");
    }
  });

  function errorMessage(xhr) {
    if (!xhr || !xhr.status) {
      return "The server could not be reached. Check your connection and try again.";
    }
    if (xhr.status === 400) {
      return "This request was refused. Reload the page and try again.";
    }
    // Our error pages carry their message in #error-message. DOMParser runs no scripts.
    try {
      var doc = new DOMParser().parseFromString(xhr.responseText || "", "text/html");
      var node = doc.getElementById("error-message");
      if (node && node.textContent.trim()) {
        return node.textContent.trim();
      }
    } catch (ignored) {
      /* fall through to the generic message */
    }
    return "Something went wrong (" + xhr.status + "). Try again.";
  }

  document.addEventListener("htmx:responseError", function (event) {
    showToast(errorMessage(event.detail.xhr), "error");
  });

  document.addEventListener("htmx:sendError", function () {
    showToast(errorMessage(null), "error");
  });

  // 422 swaps so forms can show their errors; a full error page answering with 422 (a service's
  // Unprocessable) must not be swapped into a fragment's place.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var xhr = event.detail.xhr;
    if (xhr && xhr.status === 422 && /data-error-page=/.test(xhr.responseText || "")) {
      event.detail.shouldSwap = false;
      showToast(errorMessage(xhr), "error");
    }
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !form.hasAttribute("hx-post") && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  function startToastTimers() {
    var toasts = document.querySelectorAll("#toasts .toast");
    for (var i = 0; i < toasts.length; i++) {
      var level = toasts[i].className.indexOf("toast--error") === -1 ? "info" : "error";
      scheduleDismiss(toasts[i], level);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", startToastTimers);
  } else {
    startToastTimers();
  }
})();

/* Copy buttons and focus after swaps (overview, tasks, settings, outbox pages).
 *
 * - <button type="button" data-copy="ID" hidden> copies the value (or text) of #ID with the Clipboard
 *   API. The button stays hidden without JavaScript: the text itself, in a read-only field, is the
 *   fallback. When the clipboard is unavailable or refuses, the text is selected and a toast says
 *   how to copy it by hand.
 * - When a swap removed the focused element (a Done button, a submitted form), the swapped-in element
 *   that carries data-focus-on-swap (or holds one) receives focus, so keyboard and screen-reader users
 *   are not left nowhere.
 */
(function () {
  "use strict";

  function toast(message, level) {
    if (window.Drumbeat && window.Drumbeat.showToast) {
      window.Drumbeat.showToast(message, level);
    }
  }

  function revealCopyButtons(root) {
    var buttons = (root || document).querySelectorAll("[data-copy][hidden]");
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].hidden = false;
    }
  }

  function selectText(source) {
    if (typeof source.select === "function") {
      source.focus();
      source.select();
      return;
    }
    var range = document.createRange();
    range.selectNodeContents(source);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function copyFailed(source) {
    selectText(source);
    toast("Copying is not available here: the text is selected, press Ctrl+C (\u2318C on a Mac) to copy it.", "info");
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) {
      return;
    }
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) {
      return;
    }
    var text = "value" in source && /^(INPUT|TEXTAREA)$/.test(source.tagName) ? source.value : source.textContent;
    if (!navigator.clipboard || !window.isSecureContext) {
      copyFailed(source);
      return;
    }
    navigator.clipboard.writeText(text).then(
      function () {
        toast("Copied to the clipboard.", "success");
      },
      function () {
        copyFailed(source);
      }
    );
  });

  document.addEventListener("htmx:load", function (event) {
    var element = event.detail && event.detail.elt;
    if (!element || element === document.body || !element.querySelectorAll) {
      return;
    }
    revealCopyButtons(element);
    var active = document.activeElement;
    if (active && active !== document.body && document.body.contains(active)) {
      // Focus survived the swap (e.g. a filter select outside the swapped list): leave it there.
      return;
    }
    var target = element.matches("[data-focus-on-swap]") ? element : null;
    var inner = element.querySelectorAll("[data-focus-on-swap]");
    if (inner.length) {
      // The innermost marked element is the most specific (e.g. a new key's warning in its section).
      target = inner[inner.length - 1];
    }
    if (target) {
      target.focus({ preventScroll: false });
    }
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () {
      revealCopyButtons(document);
    });
  } else {
    revealCopyButtons(document);
  }
})();

/* Panels (the campaign page's enrollment timeline): a button with data-clear="#id" empties that
 * element, and so does Escape for an open [data-drawer]. Focus goes back to the link that opened
 * it (marked data-drawer-opener). */
(function () {
  "use strict";

  var opener = null;

  function clear(target) {
    if (!target) {
      return;
    }
    while (target.firstChild) {
      target.removeChild(target.firstChild);
    }
    if (opener && document.body.contains(opener)) {
      opener.focus();
    }
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest("[data-drawer-opener]");
    if (link) {
      opener = link;
    }
    var button = event.target.closest("[data-clear]");
    if (button) {
      clear(document.querySelector(button.getAttribute("data-clear")));
    }
  });

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") {
      return;
    }
    var drawers = document.querySelectorAll("[data-drawer]");
    for (var i = 0; i < drawers.length; i++) {
      if (drawers[i].firstElementChild) {
        clear(drawers[i]);
      }
    }
  });
})();

/* Templates: drag and drop to reorder the steps of a sequence.
 *
 * Each step is an <li draggable="true" data-move-url data-position> inside #steps. Dropping one step
 * on another POSTs that step's position through htmx.ajax, so the request carries the CSRF header
 * (htmx:configRequest above) and the answer, the updated #steps, is swapped in like any htmx
 * response. The Move up / Move down buttons do the same from the keyboard and without JavaScript.
 */
(function () {
  "use strict";

  var dragged = null;

  function stepOf(node) {
    return node && node.closest ? node.closest("[data-move-url]") : null;
  }

  function dropTarget(event) {
    var over = stepOf(event.target);
    if (!dragged || !over || over === dragged || over.parentNode !== dragged.parentNode) {
      return null;
    }
    return over;
  }

  function clearTargets() {
    var marked = document.querySelectorAll(".is-drop-target");
    for (var i = 0; i < marked.length; i++) {
      marked[i].classList.remove("is-drop-target");
    }
  }

  function reset() {
    clearTargets();
    if (dragged) {
      dragged.classList.remove("is-dragging");
    }
    dragged = null;
  }

  document.addEventListener("dragstart", function (event) {
    var step = stepOf(event.target);
    // Dragging a link or selected text inside a step is not a reorder.
    if (!step || event.target !== step) {
      return;
    }
    dragged = step;
    step.classList.add("is-dragging");
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", step.id);
  });

  document.addEventListener("dragover", function (event) {
    var over = dropTarget(event);
    if (!over) {
      return;
    }
    event.preventDefault();
    event.dataTransfer.dropEffect = "move";
    if (!over.classList.contains("is-drop-target")) {
      clearTargets();
      over.classList.add("is-drop-target");
    }
  });

  document.addEventListener("drop", function (event) {
    var over = dropTarget(event);
    if (!over) {
      return;
    }
    event.preventDefault();
    var url = dragged.getAttribute("data-move-url");
    var position = over.getAttribute("data-position");
    reset();
    if (window.htmx && url && position) {
      window.htmx.ajax("POST", url, { target: "#steps", swap: "outerHTML", values: { position: position } });
    }
  });

  document.addEventListener("dragend", reset);
})();
