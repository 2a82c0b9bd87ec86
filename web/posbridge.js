// posbridge.js: the JavaScript client of the posbridge till daemon's
// WebSocket API (docs/protocol.md, "HTTP and WebSocket"). No build step:
//   <script src="http://127.0.0.1:7450/posbridge.js"></script>
//   const pb = new PosBridge("ws://127.0.0.1:7450/ws", { token });
//   const info = await pb.call("system.info");
//   pb.on("card.read", ev => ...);      // "device.*", "*" work too
// Calls wait for the connection (and the login); calls in flight when it
// drops are rejected; it reconnects with back-off, logs in again and
// subscribes again to every pattern given to on().
"use strict";

class PosBridgeError extends Error {
  constructor(error) {
    super(error && error.message ? error.message : String(error));
    this.name = "PosBridgeError";
    this.code = error && error.code;
    this.data = error && error.data;
  }
}

class PosBridge {
  constructor(url, options = {}) {
    if (!url) {
      url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
    }
    this.url = url.replace(/^http/, "ws");
    this.token = options.token || null;
    this.timeoutMs = options.timeoutMs || 30000;
    this.minDelayMs = options.minDelayMs || 500;
    this.maxDelayMs = options.maxDelayMs || 15000;
    this._delay = this.minDelayMs;
    this._nextId = 1;
    this._pending = new Map();
    this._handlers = [];
    this._statusHandlers = [];
    this._waiters = [];
    this._ws = null;
    this._ready = false;
    this._closed = false;
    this.status = "connecting";
    this._connect();
  }

  // Calls `method` with `params`; resolves to the result, rejects with a
  // PosBridgeError (`code`, `message`, `data`) or on disconnect/timeout.
  async call(method, params) {
    await this._whenReady();
    return this._send(method, params);
  }

  // Calls `handler(event)` for each event whose topic matches `pattern`
  // ("card.read", "device.*" or "*"). Returns a function that removes it.
  on(pattern, handler) {
    const entry = { pattern, handler };
    const isNew = !this._handlers.some(h => h.pattern === pattern);
    this._handlers.push(entry);
    if (isNew && this._ready) {
      this._send("events.subscribe", { topics: [pattern] }).catch(e => this._emitStatus("error", e));
    }
    return () => {
      this._handlers = this._handlers.filter(h => h !== entry);
      if (this._ready && !this._handlers.some(h => h.pattern === pattern)) {
        this._send("events.unsubscribe", { topics: [pattern] }).catch(() => {});
      }
    };
  }

  // Calls `fn(status, detail)` on "connecting", "open", "closed",
  // "unauthorized" (the token was refused; no reconnect) and "error".
  onStatus(fn) {
    this._statusHandlers.push(fn);
    fn(this.status);
  }

  // Closes for good: no reconnect, pending calls rejected.
  close() {
    this._closed = true;
    if (this._ws) this._ws.close(1000);
    this._failAll(new PosBridgeError({ message: "closed" }));
  }

  _emitStatus(status, detail) {
    if (status !== "error") this.status = status;
    for (const fn of this._statusHandlers) {
      try { fn(status, detail); } catch (e) { console.error(e); }
    }
  }

  _whenReady() {
    if (this._ready) return Promise.resolve();
    if (this._closed) return Promise.reject(new PosBridgeError({ message: "closed" }));
    return new Promise((resolve, reject) => {
      const w = { resolve, reject };
      w.timer = setTimeout(() => {
        this._waiters = this._waiters.filter(x => x !== w);
        reject(new PosBridgeError({ message: "not connected to posbridge" }));
      }, this.timeoutMs);
      this._waiters.push(w);
    });
  }

  _send(method, params) {
    const ws = this._ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new PosBridgeError({ message: "not connected to posbridge" }));
    }
    const id = this._nextId++;
    const msg = { jsonrpc: "2.0", id, method };
    if (params !== undefined) msg.params = params;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new PosBridgeError({ message: method + ": no answer in " + this.timeoutMs + " ms" }));
      }, this.timeoutMs);
      this._pending.set(id, { resolve, reject, timer });
      ws.send(JSON.stringify(msg));
    });
  }

  _connect() {
    if (this._closed) return;
    this._emitStatus("connecting");
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (e) {
      this._emitStatus("error", e);
      this._retry();
      return;
    }
    this._ws = ws;
    ws.onopen = () => this._start(ws);
    ws.onmessage = m => this._receive(m.data);
    ws.onclose = () => {
      if (this._ws !== ws) return;
      this._ws = null;
      this._ready = false;
      this._failAll(new PosBridgeError({ message: "connection to posbridge lost" }));
      if (this._closed) return;
      if (this.status !== "unauthorized") {
        this._emitStatus("closed");
        this._retry();
      }
    };
  }

  // Login, then the subscriptions, then the waiting calls.
  async _start(ws) {
    try {
      if (this.token) await this._send("auth.login", { token: this.token });
      const topics = [...new Set(this._handlers.map(h => h.pattern))];
      if (topics.length) await this._send("events.subscribe", { topics });
    } catch (e) {
      if (e.code === 1003 || e.code === 1007) {
        // A wrong token stays wrong: reconnecting would only add waits.
        this._emitStatus("unauthorized", e);
        for (const w of this._waiters.splice(0)) { clearTimeout(w.timer); w.reject(e); }
        ws.close(1000);
      } else {
        this._emitStatus("error", e);
        ws.close(1011);
      }
      return;
    }
    this._delay = this.minDelayMs;
    this._ready = true;
    this._emitStatus("open");
    for (const w of this._waiters.splice(0)) { clearTimeout(w.timer); w.resolve(); }
  }

  _retry() {
    const wait = this._delay * (0.75 + Math.random() / 2);
    this._delay = Math.min(this._delay * 2, this.maxDelayMs);
    setTimeout(() => this._connect(), wait);
  }

  _failAll(err) {
    for (const [, p] of this._pending) { clearTimeout(p.timer); p.reject(err); }
    this._pending.clear();
  }

  _receive(text) {
    let msg;
    try { msg = JSON.parse(text); } catch (e) { return; }
    for (const m of Array.isArray(msg) ? msg : [msg]) {
      if (m.method === "event" && m.params) {
        for (const h of this._handlers) {
          if (PosBridge.matches(h.pattern, m.params.topic)) {
            try { h.handler(m.params); } catch (e) { console.error(e); }
          }
        }
        continue;
      }
      const p = this._pending.get(m.id);
      if (!p) continue;
      this._pending.delete(m.id);
      clearTimeout(p.timer);
      if (m.error) p.reject(new PosBridgeError(m.error)); else p.resolve(m.result);
    }
  }

  // Whether a topic matches a pattern as the daemon matches them.
  static matches(pattern, topic) {
    if (pattern === "*") return true;
    if (pattern.endsWith(".*")) return topic.startsWith(pattern.slice(0, -1));
    return pattern === topic;
  }
}

if (typeof window !== "undefined") {
  window.PosBridge = PosBridge;
  window.PosBridgeError = PosBridgeError;
}
