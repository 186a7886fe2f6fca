// The dashboard: a hash router over three views, and the function key prompt.
import { functionKey, onUnauthorized, setFunctionKey } from "./api.js";
import { el } from "./util.js";
import { jobsView } from "./jobs.js"; // the first page; the other views load when first opened

const main = document.getElementById("main");
const auth = document.getElementById("auth");
let leave = () => {};

let shown = 0;
async function route() {
  leave();
  leave = () => {};
  const mine = ++shown;
  const hash = location.hash.replace(/^#\/?/, "");
  const [view, ...rest] = hash.split("/");
  const arg = decodeURIComponent(rest.join("/"));
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("current", a.dataset.view === (view || "jobs"));
  main.replaceChildren();
  let open = () => jobsView(main);
  if (view === "job" && arg) {
    const { jobView } = await import("./job.js");
    open = () => jobView(main, arg);
  } else if (view === "schedules") {
    const { schedulesView } = await import("./schedules.js");
    open = () => schedulesView(main);
  }
  if (mine === shown) leave = open();
}

// The function key: asked for when the API answers 401, kept for this tab's session only.
function authBar(prompting) {
  const key = functionKey();
  if (!prompting && !key) return auth.replaceChildren();
  if (key && !prompting) {
    return auth.replaceChildren(
      el("span", { class: "muted" }, "function key set "),
      el("button", { type: "button", class: "link", onclick: () => { setFunctionKey(""); authBar(false); route(); } }, "forget"),
    );
  }
  const input = el("input", { type: "password", name: "key", placeholder: "function key", autocomplete: "off", "aria-label": "function key" });
  const here = location.pathname + location.hash;
  auth.replaceChildren(
    el("form", {
      id: "key-form",
      onsubmit: (event) => {
        event.preventDefault();
        setFunctionKey(input.value.trim());
        authBar(false);
        route();
      },
    },
      el("span", { class: "warn" }, "The API needs a key: "),
      input,
      el("button", { type: "submit" }, "Use key"),
      el("a", { href: `/.auth/login/aad?post_login_redirect_uri=${encodeURIComponent(here)}`, class: "signin" }, "or sign in"),
    ),
  );
  input.focus();
}

onUnauthorized(() => authBar(true));
window.addEventListener("hashchange", route);
authBar(false);
route();
