// Keyboard review of a page of items (the review page's only script; the page has no inline script).
// j/k or the arrow keys move between items; 1-9 pick the current item's n-th answer (a label, a set
// member to toggle, a rating); 0 a set's "none applies"; a/b the better of two; s toggles skip; Enter saves the page. Picking an
// answer moves on to the next item. Keys typed into a text field or a select are left alone.
"use strict";
(function () {
  const form = document.getElementById("bulk");
  if (!form) {
    return;
  }
  const items = Array.from(form.querySelectorAll(".item"));
  let current = 0;

  function focusItem(i) {
    current = Math.max(0, Math.min(items.length - 1, i));
    items.forEach((el, j) => el.classList.toggle("current", j === current));
    items[current].focus({preventScroll: true});
    items[current].scrollIntoView({block: "nearest"});
  }

  function pick(input) {
    if (input.type === "checkbox") {
      input.checked = !input.checked;
      return false; // a set takes several ticks: stay on the item
    }
    input.checked = true;
    return true;
  }

  function onKey(ev) {
    const t = ev.target;
    if (ev.ctrlKey || ev.metaKey || ev.altKey) {
      return;
    }
    if (t instanceof HTMLSelectElement || t instanceof HTMLTextAreaElement ||
        (t instanceof HTMLInputElement && t.type === "text")) {
      return;
    }
    const item = items[current];
    let handled = true;
    if (ev.key === "j" || ev.key === "ArrowDown") {
      focusItem(current + 1);
    } else if (ev.key === "k" || ev.key === "ArrowUp") {
      focusItem(current - 1);
    } else if (/^[1-9]$/.test(ev.key)) {
      const choices = item.querySelectorAll("input[data-choice]");
      const input = choices[Number(ev.key) - 1];
      if (input && pick(input) && item.dataset.kind !== "reranker") {
        focusItem(current + 1);
      }
    } else if (ev.key === "0") {
      const none = item.querySelector("input[data-none]");
      if (none) {
        none.checked = !none.checked;
      }
    } else if (ev.key === "a" || ev.key === "b") {
      const input = item.querySelector(`input[data-pair="${ev.key}"]`);
      if (input) {
        pick(input);
        focusItem(current + 1);
      }
    } else if (ev.key === "s") {
      const box = item.querySelector("input[data-skip]");
      box.checked = !box.checked;
      item.classList.toggle("skipped", box.checked);
      if (box.checked) {
        focusItem(current + 1);
      }
    } else if (ev.key === "Enter") {
      form.requestSubmit();
    } else {
      handled = false;
    }
    if (handled) {
      ev.preventDefault();
    }
  }

  items.forEach((el, j) => el.addEventListener("click", () => focusItem(j)));
  document.addEventListener("keydown", onKey);
  focusItem(0);
})();
