// The example web POS (served at /pos/): a customer's card, a sale with
// points, the receipt printed and previewed, all through posbridge.js.
"use strict";

const TEXT = {
  en: {
    title: "posbridge web POS", logout: "Forget token", login_title: "Connect to the till",
    login_help: "Paste an API token from the daemon's token file (posbridge demo prints one).",
    connect: "Connect", customer: "Customer", swipe_hint: "Swipe or scan a card.",
    manual: "Type a card", card_number: "Card number", card_secret: "Secret code", enter: "Enter",
    reads: "Reads", sale: "Sale", item: "Item", qty: "Qty", price: "Price", sku: "SKU / barcode",
    name: "Name", add: "Add", redeem: "Points to spend", printer: "Printer", quote: "Quote",
    commit: "Pay and commit", new_sale: "New sale", result: "Result", preview: "Receipt preview",
    card: "Card", account: "Account", balance: "Balance", new_customer: "new customer (enrolled at the first sale)",
    secret_yes: "secret code read: points may be spent", secret_no: "no secret code: points can only be earned",
    total: "Total", money: "Paid in money", accrual: "Points earned", max_redeem: "Points spendable",
    committed: "Sale committed", printed: "Receipt print job", no_card: "Read a card first.",
    no_lines: "Add a line first.", scanned: "Scanned", bad_token: "The token was not accepted.",
    status_connecting: "connecting…", status_open: "connected", status_closed: "disconnected",
    status_unauthorized: "token refused", receipt: "RECEIPT", remove: "×",
  },
  ru: {
    title: "Веб-касса posbridge", logout: "Забыть токен", login_title: "Подключение к кассе",
    login_help: "Вставьте API-токен из файла токенов демона (posbridge demo печатает его).",
    connect: "Подключить", customer: "Покупатель", swipe_hint: "Проведите или отсканируйте карту.",
    manual: "Ввести карту вручную", card_number: "Номер карты", card_secret: "Секретный код", enter: "Ввести",
    reads: "Считывания", sale: "Продажа", item: "Товар", qty: "Кол-во", price: "Цена", sku: "Артикул / штрихкод",
    name: "Название", add: "Добавить", redeem: "Списать баллов", printer: "Принтер", quote: "Рассчитать",
    commit: "Оплатить и провести", new_sale: "Новая продажа", result: "Результат", preview: "Предпросмотр чека",
    card: "Карта", account: "Счёт", balance: "Баланс", new_customer: "новый покупатель (счёт откроется при первой покупке)",
    secret_yes: "секретный код считан: баллы можно списать", secret_no: "без секретного кода: баллы только начисляются",
    total: "Итого", money: "Оплачено деньгами", accrual: "Начислено баллов", max_redeem: "Можно списать",
    committed: "Продажа проведена", printed: "Задание печати чека", no_card: "Сначала считайте карту.",
    no_lines: "Сначала добавьте товар.", scanned: "Отсканировано", bad_token: "Токен не принят.",
    status_connecting: "подключение…", status_open: "подключено", status_closed: "нет связи",
    status_unauthorized: "токен отклонён", receipt: "ЧЕК", remove: "×",
  },
};

let lang = sessionStorage.getItem("pb_lang") ||
  ((navigator.language || "en").toLowerCase().startsWith("ru") ? "ru" : "en");
const t = key => TEXT[lang][key] || key;
const $ = id => document.getElementById(id);

function applyLang() {
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll("[data-t]")) el.textContent = t(el.dataset.t);
  for (const el of document.querySelectorAll("[data-ph]")) el.placeholder = t(el.dataset.ph);
  $("lang").textContent = lang === "ru" ? "EN" : "RU";
  showCustomer();
  renderLines();
}

let pb = null;
let card = null;        // the last card.read
let lines = [];         // the sale's lines
let saleKey = newKey(); // idempotency key, kept until the sale commits

function newKey() {
  const b = new Uint8Array(8);
  crypto.getRandomValues(b);
  return "web-" + Array.from(b, x => x.toString(16).padStart(2, "0")).join("");
}

function showError(where, e) {
  $(where).textContent = e ? (e.code ? e.code + ": " : "") + e.message : "";
}

function showCustomer() {
  const box = $("customer");
  box.replaceChildren();
  if (!card) { box.textContent = t("swipe_hint"); box.className = "muted"; return; }
  box.className = "";
  const add = (label, value, cls) => {
    const p = document.createElement("div");
    if (cls) p.className = cls;
    p.textContent = label ? label + ": " + value : value;
    box.append(p);
  };
  add(t("card"), card.card_masked, "big");
  if (card.account) {
    add(t("account"), String(card.account.account));
    add(t("balance"), card.account.balance, "big");
  } else {
    add("", t("new_customer"));
  }
  add("", card.has_secret ? t("secret_yes") : t("secret_no"), card.has_secret ? "ok" : "muted");
}

function renderLines() {
  const body = $("lines");
  body.replaceChildren();
  lines.forEach((l, i) => {
    const tr = document.createElement("tr");
    for (const [v, cls] of [[l.name + " (" + l.sku + ")"], [l.qty, "n"], [l.price, "n"]]) {
      const td = document.createElement("td");
      td.textContent = v;
      if (cls) td.className = cls;
      tr.append(td);
    }
    const td = document.createElement("td");
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = t("remove");
    b.onclick = () => { lines.splice(i, 1); renderLines(); };
    td.append(b);
    tr.append(td);
    body.append(tr);
  });
}

function saleParams() {
  if (!card) throw new Error(t("no_card"));
  if (!lines.length) throw new Error(t("no_lines"));
  return { card_token: card.card_token, lines, redeem: $("redeem").value.trim() || "0" };
}

async function quote() {
  showError("sale-error");
  try {
    const q = await pb.call("sale.quote", saleParams());
    const out = $("quote-out");
    out.replaceChildren();
    for (const [label, v] of [["total", q.quote.total], ["money", q.quote.money_paid],
      ["accrual", q.quote.accrual], ["max_redeem", q.quote.max_redeemable]]) {
      const p = document.createElement("div");
      p.textContent = t(label) + ": " + v;
      out.append(p);
    }
  } catch (e) { showError("sale-error", e); }
}

// The receipt: the lines, the total and the bonus block the ledger wrote.
function receiptDocument(result) {
  const blocks = [{ type: "text", text: t("receipt") + " " + result.receipt_id, bold: true, align: "center" }];
  for (const l of lines) {
    blocks.push({ type: "columns", cells: [{ text: l.name || l.sku }, { text: l.qty + " x " + l.price, width: 12 }] });
  }
  blocks.push({ type: "separator", char: "-" });
  blocks.push({ type: "columns", cells: [{ text: t("total") }, { text: result.total, width: 12 }] });
  blocks.push({ type: "columns", cells: [{ text: t("money") }, { text: result.money_paid, width: 12 }] });
  for (const text of result.bonus_lines) blocks.push({ type: "text", text });
  blocks.push({ type: "cut", partial: true });
  return { blocks };
}

async function commit() {
  showError("sale-error");
  try {
    const params = saleParams();
    const r = await pb.call("sale.commit", { idempotency_key: saleKey, receipt_id: saleKey, ...params });
    const out = [t("committed") + ": " + r.transaction, t("balance") + ": " + r.balance_before + " → " + r.balance_after];
    const printer = $("printer").value;
    const doc = receiptDocument(r);
    if (printer) {
      // The job id follows the sale's key: a retry never prints twice.
      const job = await pb.call("print.document", { printer, job_id: saleKey + "-receipt", document: doc });
      out.push(t("printed") + ": " + job.job_id + " (" + job.state + ")");
    }
    $("result").textContent = out.concat(r.bonus_lines).join("\n");
    const pv = await pb.call("print.preview", printer ? { printer, document: doc } : { document: doc });
    const image = new Image();
    image.alt = t("preview");
    image.id = "preview-img";
    image.src = "data:image/png;base64," + pv.png_base64;
    $("preview").replaceChildren(image);
    if (card && card.account) card.account.balance = r.balance_after;
    showCustomer();
  } catch (e) { showError("sale-error", e); }
}

function newSale() {
  lines = [];
  saleKey = newKey();
  $("quote-out").replaceChildren();
  $("result").textContent = "";
  $("preview").replaceChildren();
  $("redeem").value = "0";
  renderLines();
}

function note(text) {
  const li = document.createElement("li");
  li.textContent = new Date().toLocaleTimeString() + "  " + text;
  $("reads").prepend(li);
  while ($("reads").children.length > 10) $("reads").lastChild.remove();
}

async function loadPrinters() {
  try {
    const r = await pb.call("printers.list");
    const sel = $("printer");
    sel.replaceChildren();
    for (const p of r.printers.filter(p => p.type === "escpos")) {
      const o = document.createElement("option");
      o.value = o.textContent = p.name;
      sel.append(o);
    }
  } catch (e) { showError("sale-error", e); }
}

function connect(token) {
  pb = new PosBridge(null, { token });
  pb.on("card.read", ev => {
    card = ev;
    note(t("card") + " " + ev.card_masked + " (" + ev.source + ")");
    showCustomer();
  });
  pb.on("scan", ev => {
    note(t("scanned") + " " + ev.label);
    if (ev.encoding === "text") {
      $("line-sku").value = ev.label;
      $("line-price").focus();
    }
  });
  pb.onStatus((status, detail) => {
    const s = $("status");
    if (status !== "error") { s.textContent = t("status_" + status); s.className = status; }
    if (status === "open") {
      $("login").hidden = true;
      $("pos").hidden = false;
      $("logout").hidden = false;
      loadPrinters();
    } else if (status === "unauthorized") {
      sessionStorage.removeItem("pb_token");
      pb.close();
      $("pos").hidden = true;
      $("login").hidden = false;
      $("login-error").textContent = t("bad_token");
    }
  });
}

$("login-form").onsubmit = e => {
  e.preventDefault();
  const token = $("token").value.trim();
  sessionStorage.setItem("pb_token", token);
  $("token").value = "";
  $("login-error").textContent = "";
  connect(token);
};
$("logout").onclick = () => {
  sessionStorage.removeItem("pb_token");
  location.reload();
};
$("lang").onclick = () => {
  lang = lang === "ru" ? "en" : "ru";
  sessionStorage.setItem("pb_lang", lang);
  applyLang();
};
$("card-form").onsubmit = async e => {
  e.preventDefault();
  const params = { number: $("card-number").value.trim() };
  const secret = $("card-secret").value;
  if (secret) params.secret = secret;
  try {
    card = await pb.call("card.enter", params);
    $("card-number").value = $("card-secret").value = "";
    showCustomer();
  } catch (err) { showError("sale-error", err); }
};
$("line-form").onsubmit = e => {
  e.preventDefault();
  lines.push({
    sku: $("line-sku").value.trim(),
    name: $("line-name").value.trim() || $("line-sku").value.trim(),
    category: "goods",
    qty: $("line-qty").value.trim(),
    price: $("line-price").value.trim(),
  });
  $("line-sku").value = $("line-name").value = $("line-price").value = "";
  $("line-qty").value = "1";
  renderLines();
};
$("quote").onclick = quote;
$("commit").onclick = commit;
$("new-sale").onclick = newSale;

applyLang();
const saved = sessionStorage.getItem("pb_token");
if (saved) connect(saved); else $("login").hidden = false;
