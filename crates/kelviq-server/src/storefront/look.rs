//! One look for every hosted page (checkout, portal, sign-in): the seller's
//! name and logo in a header, a "Test mode" badge in the sandbox, the brand
//! colour on buttons and links (adjusted so text on it and links in it stay
//! readable), the support address and legal links in a footer. One inline
//! style sheet, no scripts, no external assets; readable from 360 px wide.

use crate::error::{ServiceError, ServiceResult};
use crate::routes::hosted::esc;
use crate::state::AppState;
use kelviq_core::storefront::StorefrontSettings;
use kelviq_core::{Environment, Tenant};

/// Who sells, as the hosted pages show it.
#[derive(Debug, Clone)]
pub struct Brand {
    pub seller: String,
    /// The logo's path on this server.
    pub logo: Option<String>,
    pub color: kelviq_core::storefront::Rgb,
    pub test_mode: bool,
    pub support_email: Option<String>,
    pub terms_url: Option<String>,
    pub privacy_url: Option<String>,
}

impl Brand {
    pub fn of(org_name: &str, s: &StorefrontSettings, env: Environment) -> Brand {
        Brand {
            seller: s.seller_name(org_name).to_string(),
            logo: super::logo_path(s),
            color: s.brand(),
            test_mode: env == Environment::Sandbox,
            support_email: s.support_email.clone(),
            terms_url: s.terms_url.clone(),
            privacy_url: s.privacy_url.clone(),
        }
    }

    /// The brand of a tenant's pages.
    pub async fn load(state: &AppState, tenant: &Tenant) -> ServiceResult<Brand> {
        let org = state
            .store
            .find_organization(tenant.org_id)
            .await?
            .ok_or_else(|| ServiceError::Internal(anyhow::anyhow!("organisation {} is gone", tenant.org_id)))?;
        Ok(Brand::of(&org.name, &super::get(state, tenant).await?, tenant.env))
    }
}

/// How the page's main area is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One column of text and forms.
    Narrow,
    /// Two panes side by side on wide screens (the checkout's summary and
    /// payment form), stacked on narrow ones.
    Split,
}

const STYLE: &str = "*{box-sizing:border-box}\
body{margin:0;font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1a1a1a;background:#fff;line-height:1.45}\
a{color:var(--ink)}\
.top{display:flex;align-items:center;gap:.75rem;padding:.9rem 1.25rem;border-bottom:1px solid #d9dce1;flex-wrap:wrap}\
.top img{height:32px;width:auto;max-width:160px}.seller{font-weight:650;font-size:1.05rem}\
.badge{margin-left:auto;background:#fff4d6;color:#5c3f00;border:1px solid #d9b24c;border-radius:999px;padding:.1rem .65rem;\
font-size:.78rem;font-weight:700;text-transform:uppercase;letter-spacing:.04em}\
main{max-width:46rem;margin:0 auto;padding:1.25rem 1.25rem 3rem}\
main.split{max-width:66rem;display:grid;grid-template-columns:minmax(0,1fr);gap:1.75rem}\
@media (min-width:860px){main.split{grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:3.5rem;padding-top:2.5rem}\
.pane-summary{position:sticky;top:1.5rem;align-self:start}}\
.pane-summary{background:#f6f7f9;border:1px solid #d9dce1;border-radius:10px;padding:1.25rem}\
h1{font-size:1.45rem;margin:.35rem 0 1rem}h2{font-size:1.15rem;margin:1.75rem 0 .6rem}\
label{display:block;margin-top:1rem;font-weight:600;font-size:.95rem}\
label.check{display:flex;gap:.5rem;align-items:center;font-weight:400}label.check input{width:auto;margin:0}\
input,select,button{font:inherit}input,select{width:100%;padding:.6rem;font-size:1rem;margin-top:.3rem;border:1px solid #767b85;border-radius:6px;background:#fff;color:inherit}\
input[readonly]{background:#eef0f3}\
input:focus-visible,select:focus-visible,button:focus-visible,a:focus-visible,summary:focus-visible{outline:3px solid var(--ink);outline-offset:2px}\
fieldset{border:0;padding:0;margin:1.5rem 0 0;min-width:0}legend{font-weight:700;font-size:1.05rem;padding:0}\
button,a.button{display:inline-block;margin-top:1.25rem;width:100%;padding:.8rem 1rem;font-size:1.05rem;font-weight:600;\
background:var(--brand);color:var(--on-brand);border:0;border-radius:6px;cursor:pointer;text-align:center;text-decoration:none}\
button.secondary,a.button.secondary,.card button,form.inline button{width:auto;background:#fff;color:var(--ink);\
border:1px solid var(--ink);font-size:.95rem;padding:.45rem .9rem;margin-top:.5rem}\
.card button[type=submit]:not(.secondary){background:var(--brand);color:var(--on-brand);border-color:var(--brand)}\
.row{display:flex;gap:1rem;flex-wrap:wrap;align-items:flex-end}.row>div{flex:1 1 9rem;min-width:0}\
.error{background:#fde8e8;border:1px solid #c81e1e;color:#8a1010;padding:.75rem;border-radius:6px;margin:1rem 0}\
.notice{background:#e8f5ec;border:1px solid #3c8a55;color:#174d2a;padding:.75rem;border-radius:6px;margin:1rem 0}\
.muted{color:#555;font-size:.9rem}table{width:100%;border-collapse:collapse}\
th,td{padding:.4rem .35rem;text-align:left;vertical-align:top}td:last-child,th:last-child{text-align:right}\
thead th{border-bottom:1px solid #d9dce1;font-size:.9rem}tr.sum td{border-top:1px solid #d9dce1}\
tr.total td{font-weight:700;font-size:1.1rem;border-top:1px solid #b8bcc4}\
.product{display:flex;gap:.9rem;align-items:center}.product img{width:56px;height:56px;object-fit:cover;border-radius:8px;border:1px solid #d9dce1}\
ul.features{padding-left:1.2rem;margin:.5rem 0 1rem}ul.features li{margin:.15rem 0}\
.back{display:inline-block;margin-bottom:.5rem;font-size:.95rem}\
.card{border:1px solid #d9dce1;border-radius:8px;padding:1rem;margin:.75rem 0}.card h3{margin:0 0 .4rem;font-size:1.1rem}\
.row-between{display:flex;justify-content:space-between;align-items:center;gap:.75rem;flex-wrap:wrap}\
.status{display:inline-block;padding:.1rem .55rem;border-radius:999px;background:#e6ecfb;color:#1f3a8a;font-size:.85rem}\
form.inline{display:inline}code{word-break:break-all}.scroll{overflow-x:auto}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:.5rem 0}dt{color:#555}dd{margin:0}\
details{margin-top:.75rem}summary{cursor:pointer;color:var(--ink);font-weight:600}\
.choice{display:flex;gap:.6rem;align-items:baseline;margin:.5rem 0}.choice input{width:auto;margin:0}.choice label{margin:0;font-weight:500}\
footer{border-top:1px solid #d9dce1;padding:1rem 1.25rem 2rem;font-size:.85rem;color:#555;display:flex;flex-wrap:wrap;gap:.5rem 1.25rem;justify-content:center}";

fn header(b: &Brand) -> String {
    let logo = b
        .logo
        .as_ref()
        .map(|l| format!("<img src=\"{}\" alt=\"{} logo\">", esc(l), esc(&b.seller)))
        .unwrap_or_default();
    let badge = if b.test_mode { "<span class=\"badge\">Test mode</span>" } else { "" };
    format!("<header class=\"top\">{logo}<span class=\"seller\">{}</span>{badge}</header>", esc(&b.seller))
}

fn footer(b: &Brand) -> String {
    let mut items = Vec::new();
    if let Some(e) = &b.support_email {
        items.push(format!("<a href=\"mailto:{0}\">{0}</a>", esc(e)));
    }
    if let Some(t) = &b.terms_url {
        items.push(format!("<a href=\"{}\" rel=\"noopener noreferrer\">Terms</a>", esc(t)));
    }
    if let Some(p) = &b.privacy_url {
        items.push(format!("<a href=\"{}\" rel=\"noopener noreferrer\">Privacy</a>", esc(p)));
    }
    items.push("<span>Payments by kelviq</span>".into());
    format!("<footer>{}</footer>", items.join(""))
}

/// A whole page: `body` in the main area, with the seller's header and
/// footer when the page is a seller's.
pub fn page(title: &str, brand: Option<&Brand>, layout: Layout, body: &str) -> String {
    let color = brand.map_or(kelviq_core::storefront::DEFAULT_BRAND, |b| b.color);
    let vars = format!(
        ":root{{--brand:{};--on-brand:{};--ink:{}}}",
        color.hex(),
        color.text_on().hex(),
        color.readable_on_white().hex()
    );
    let class = if layout == Layout::Split { " class=\"split\"" } else { "" };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{}</title>\
         <style>{vars}{STYLE}</style></head><body>{}<main{class}>{body}</main>{}</body></html>",
        esc(title),
        brand.map(header).unwrap_or_default(),
        brand.map(footer).unwrap_or_default(),
    )
}

/// A page of no particular seller (errors, not-found pages).
pub fn shell(title: &str, body: &str) -> String {
    page(title, None, Layout::Narrow, body)
}
