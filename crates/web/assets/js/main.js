// Entry point: resume or start a session, then show the chat page; back to the log-in
// screen when the session ends.

import { replace } from "./dom.js";
import { ChatClient } from "./client.js";
import { Session } from "./session.js";
import { authView, resumingView } from "./views/auth.js";
import { Shell } from "./views/shell.js";

const root = document.getElementById("app");
const session = new Session();
let client = null;
let shell = null;

session.addEventListener("login", () => {
  client = new ChatClient(session);
  client.start();
  shell = new Shell(session, client);
  replace(root, shell.el);
});

session.addEventListener("logout", (event) => {
  shell?.destroy();
  client?.stop();
  shell = null;
  client = null;
  showAuth(event.detail.reason);
});

function showAuth(reason = null) {
  const view = authView(session, reason);
  replace(root, view);
  view.show("login");
}

async function boot() {
  const waiting = resumingView();
  replace(root, waiting);
  const resumed = await session.restore(() => waiting.say("Cannot reach the server. Retrying…"));
  if (!resumed) showAuth();
}

// A file dropped outside the conversation must not make the tab open it and leave the
// page; the conversation handles drops on itself (and stops them reaching here).
for (const type of ["dragover", "drop"]) {
  document.addEventListener(type, (event) => {
    if (event.dataTransfer?.types?.includes("Files")) event.preventDefault();
  });
}

boot();
