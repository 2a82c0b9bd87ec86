//! The console's HTML: server-rendered with maud (escaped by default), a
//! little inline JavaScript for the feed and the previews.

use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde_json::Value;

use super::i18n::{Lang, T, tr};
use super::state::Dashboard;

const STYLE: &str = "body{font-family:sans-serif;margin:1em 2em;color:#222}\
table{border-collapse:collapse;margin-bottom:1em}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}\
.connected{color:#176e1b;font-weight:bold}.error,.disconnected{color:#b00020;font-weight:bold}\
pre.fix{background:#fff4e5;border-left:4px solid #e88b00;padding:6px;white-space:pre-wrap;margin:0}\
#feed li{font-family:monospace}.bad{color:#b00020}.ok{color:#176e1b}header form{display:inline}";

/// The page's script (served at `/console/console.js`).
pub const SCRIPT: &str = r#"
const feed = document.getElementById('feed');
const es = new EventSource('/console/feed');
es.addEventListener('read', (e) => {
  const r = JSON.parse(e.data);
  const li = document.createElement('li');
  li.textContent = [r.time, r.reader, r.topic, r.card || r.symbology || r.reason || '', r.length ? r.length + ' B' : ''].join('  ');
  const empty = document.getElementById('feed-empty');
  if (empty) empty.remove();
  feed.prepend(li);
  while (feed.children.length > 50) feed.lastChild.remove();
});
for (const b of document.querySelectorAll('button.preview')) {
  b.addEventListener('click', () => {
    const img = document.getElementById('preview-' + b.dataset.printer);
    img.src = '/console/preview?printer=' + encodeURIComponent(b.dataset.printer);
    img.hidden = false;
  });
}
"#;

fn shell(lang: Lang, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                title { (tr(lang, T::Title)) }
                style { (PreEscaped(STYLE)) }
            }
            body { (body) }
        }
    }
}

/// The login form, with an error when the last try failed.
pub fn login(lang: Lang, error: Option<T>) -> Markup {
    shell(
        lang,
        html! {
            h1 { (tr(lang, T::Title)) }
            @if let Some(e) = error { p.bad #login-error { (tr(lang, e)) } }
            form method="post" action="/console/login" {
                input type="hidden" name="lang" value=(lang.code());
                label { (tr(lang, T::Token)) " " input type="password" name="token" autocomplete="off" autofocus; }
                " "
                button type="submit" #login { (tr(lang, T::LogIn)) }
            }
        },
    )
}

fn yes_no(lang: Lang, b: bool) -> &'static str {
    tr(lang, if b { T::Yes } else { T::No })
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The dashboard.
pub fn dashboard(lang: Lang, d: &Dashboard, csrf: &str, queued: Option<&str>) -> Markup {
    let other = if lang == Lang::Ru { Lang::En } else { Lang::Ru };
    shell(
        lang,
        html! {
            header {
                h1 { (tr(lang, T::Title)) }
                a href={ "/console?lang=" (other.code()) } { (other.code()) }
                " "
                form method="post" action="/console/logout" {
                    input type="hidden" name="csrf" value=(csrf);
                    button type="submit" { (tr(lang, T::LogOut)) }
                }
            }
            @if let Some(job) = queued { p.ok #queued { (tr(lang, T::Queued)) ": " (job) } }
            h2 { (tr(lang, T::Devices)) }
            table #devices {
                tr { th { (tr(lang, T::Device)) } th { (tr(lang, T::Kind)) } th { (tr(lang, T::State)) }
                     th { (tr(lang, T::Since)) } th { (tr(lang, T::Detail)) } th { (tr(lang, T::Fix)) } }
                @for r in &d.devices {
                    tr data-device=(r.info.name) {
                        td { (r.info.name) } td { (r.info.class) " " (r.info.type_name) br; small { (r.info.attachment) } }
                        td class=(r.info.status.as_str()) { (r.info.status.as_str()) }
                        td { (r.info.since) }
                        td { (r.info.detail.as_deref().unwrap_or("")) }
                        td { @if let Some(f) = &r.fix { pre.fix { (f) } } }
                    }
                }
            }
            @if !d.printers.is_empty() {
                h2 { (tr(lang, T::Printers)) }
                table #printers {
                    tr { th { (tr(lang, T::Device)) } th { (tr(lang, T::Status)) } th { (tr(lang, T::Queue)) } th {} }
                    @for p in &d.printers {
                        tr data-printer=(p.name) {
                            td { (p.name) }
                            td { (text(&p.status["state"]))
                                 @if p.status["paper_end"] == true { " · paper out" }
                                 @if p.status["paper_near_end"] == true { " · paper low" }
                                 @if p.status["cover_open"] == true { " · cover open" } }
                            td { (p.queue) }
                            td {
                                form method="post" action="/console/test-print" style="display:inline" {
                                    input type="hidden" name="csrf" value=(csrf);
                                    input type="hidden" name="printer" value=(p.name);
                                    button type="submit" class="test-print" { (tr(lang, T::TestPrint)) }
                                }
                                " "
                                button type="button" class="preview" data-printer=(p.name) { (tr(lang, T::Preview)) }
                                br;
                                img id={ "preview-" (p.name) } hidden alt=(tr(lang, T::Preview)) style="max-width:300px;border:1px solid #ccc";
                            }
                        }
                    }
                }
            }
            @if !d.fiscal.is_empty() {
                h2 { (tr(lang, T::Fiscal)) }
                table #fiscal {
                    tr { th { (tr(lang, T::Device)) } th { (tr(lang, T::Mode)) } th { (tr(lang, T::FnExpires)) }
                         th { (tr(lang, T::OfdUnsent)) } th { (tr(lang, T::OfdOldest)) } th { (tr(lang, T::Warnings)) }
                         th { (tr(lang, T::Queue)) } }
                    @for f in &d.fiscal {
                        @let fnv = &f.status["fn"];
                        tr data-register=(f.name) {
                            td { (f.name) }
                            td { (text(&f.status["mode_text"])) }
                            td { (text(&fnv["expires"])) }
                            td.unsent { (text(&fnv["ofd"]["unsent"])) }
                            td { (text(&fnv["ofd"]["oldest_unsent_at"])) }
                            td { (text(&fnv["warnings"])) }
                            td { (f.queue) }
                        }
                    }
                }
            }
            h2 { (tr(lang, T::Feed)) }
            ul #feed { li #feed-empty { (tr(lang, T::FeedEmpty)) } }
            h2 { (tr(lang, T::Config)) }
            @match &d.config {
                Ok(path) => p.ok #config { (path) ": " (tr(lang, T::ConfigOk)) },
                Err(e) => pre.fix #config { (e) },
            }
            h2 { (tr(lang, T::Ledger)) }
            table #ledger {
                tr { th { (tr(lang, T::Backend)) } td { (d.ledger.backend) } }
                tr { th { (tr(lang, T::Reachable)) } td class=(if d.ledger.up { "ok" } else { "bad" }) { (yes_no(lang, d.ledger.up)) } }
                @if let Some((q, f)) = d.ledger.queued {
                    tr { th { (tr(lang, T::OfflineQueue)) } td { (q) } }
                    tr { th { (tr(lang, T::Failed)) } td { (f) } }
                }
            }
            script src="/console/console.js" defer {}
        },
    )
}
