//! An invoice as a document a customer can keep: HTML (no scripts, no
//! external assets) or PDF, written here with the standard Helvetica fonts
//! (no browser, no external service). Both show the same text.

use chrono::{DateTime, Utc};
use kelviq_core::billing::{amount_text, Invoice, LineKind};
use kelviq_core::customer::Customer;
use kelviq_core::money::{currency_exponent, micro_minor_to_decimal};
use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str};

/// What a document says, in order: the heading, both parties, the facts,
/// the lines and the totals.
pub struct Document {
    pub title: String,
    pub seller: Vec<String>,
    pub buyer: Vec<String>,
    pub facts: Vec<(String, String)>,
    /// Description, quantity, unit price, amount; tier rows are indented.
    pub rows: Vec<[String; 4]>,
    pub totals: Vec<(String, String)>,
}

fn day(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

impl Document {
    pub fn new(i: &Invoice, seller: &str, customer: Option<&Customer>) -> Document {
        let money = |minor: i64| format!("{} {}", amount_text(minor, &i.currency), i.currency);
        let exp = currency_exponent(&i.currency).unwrap_or(2);
        let mut buyer = Vec::new();
        if let Some(c) = customer {
            buyer.extend(c.name.clone());
            buyer.extend(c.email.clone());
        }
        buyer.push(format!("Customer {}", i.customer_id));
        if let Some(a) = &i.billing_address {
            buyer.extend([&a.line1, &a.line2].into_iter().flatten().cloned());
            let place: Vec<&str> =
                [&a.postal_code, &a.city, &a.state, &a.country].into_iter().flatten().map(String::as_str).collect();
            if !place.is_empty() {
                buyer.push(place.join(" "));
            }
            buyer.extend(a.tax_id.as_ref().map(|id| format!("Tax id {id}")));
        }
        let mut facts =
            vec![("Status".to_string(), i.status.as_str().to_string()), ("Issued".into(), day(i.created_at))];
        facts.push(("Due".into(), day(i.due_at)));
        if let Some(p) = i.paid_at {
            facts.push(("Paid".into(), day(p)));
        }
        if let (Some(s), Some(e)) = (i.period_start, i.period_end) {
            facts.push(("Period".into(), format!("{} to {}", day(s), day(e))));
        }
        facts.push(("Order".into(), i.order_id.clone()));
        let mut rows = Vec::new();
        for l in &i.lines {
            let mut description = l.description.clone();
            if let (Some(s), Some(e), true) = (l.period_start, l.period_end, l.kind != LineKind::Base) {
                description = format!("{description} ({} to {})", day(s), day(e));
            }
            rows.push([
                description,
                l.quantity.map(|q| q.to_string()).unwrap_or_default(),
                l.unit_micro.map(|u| micro_minor_to_decimal(u, exp)).unwrap_or_default(),
                money(l.amount_minor),
            ]);
            for t in &l.tiers {
                let bound = t.up_to.map_or("and above".to_string(), |u| format!("up to {u}"));
                rows.push([
                    format!("    tier {bound}"),
                    t.quantity.to_string(),
                    micro_minor_to_decimal(t.unit_micro, exp),
                    money(t.amount_minor),
                ]);
            }
        }
        let t = &i.totals;
        let mut totals = vec![("Subtotal".to_string(), money(t.subtotal_minor))];
        if t.discount_minor != 0 {
            totals.push(("Discount".into(), money(-t.discount_minor)));
        }
        totals.push(("Tax".into(), money(t.tax_minor)));
        if t.credit_applied_minor != 0 {
            totals.push(("Credit applied".into(), money(-t.credit_applied_minor)));
        }
        totals.push(("Total".into(), money(t.total_minor)));
        totals.push(("Amount paid".into(), money(i.amount_paid_minor)));
        totals.push(("Amount due".into(), money(i.amount_due_minor())));
        Document {
            title: format!("Invoice {}", i.number),
            seller: vec![seller.to_string()],
            buyer,
            facts,
            rows,
            totals,
        }
    }

    /// The document as a page of HTML (escaped; inline style only).
    pub fn html(&self) -> String {
        use crate::routes::hosted::esc;
        let lines = |v: &[String]| v.iter().map(|s| esc(s)).collect::<Vec<_>>().join("<br>");
        let facts: String = self
            .facts
            .iter()
            .map(|(k, v)| format!("<tr><th scope=\"row\">{}</th><td>{}</td></tr>", esc(k), esc(v)))
            .collect();
        let rows: String = self
            .rows
            .iter()
            .map(|r| {
                let cells: String = r[1..].iter().map(|c| format!("<td class=\"n\">{}</td>", esc(c))).collect();
                format!("<tr><td>{}</td>{cells}</tr>", esc(&r[0]))
            })
            .collect();
        let totals: String = self
            .totals
            .iter()
            .map(|(k, v)| {
                format!("<tr><th scope=\"row\" colspan=\"3\">{}</th><td class=\"n\">{}</td></tr>", esc(k), esc(v))
            })
            .collect();
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title><style>\
             body{{font:14px/1.4 system-ui,sans-serif;margin:2rem;color:#111}}table{{border-collapse:collapse;width:100%;margin:1rem 0}}\
             th,td{{padding:.3rem .5rem;border-bottom:1px solid #ddd;text-align:left}}.n{{text-align:right}}\
             .parties{{display:flex;gap:4rem}}</style></head><body><main><h1>{title}</h1>\
             <div class=\"parties\"><section><h2>From</h2><p>{seller}</p></section><section><h2>Bill to</h2><p>{buyer}</p></section></div>\
             <table aria-label=\"Invoice details\">{facts}</table>\
             <table aria-label=\"Lines\"><thead><tr><th scope=\"col\">Description</th><th scope=\"col\" class=\"n\">Quantity</th>\
             <th scope=\"col\" class=\"n\">Unit price</th><th scope=\"col\" class=\"n\">Amount</th></tr></thead><tbody>{rows}</tbody>\
             <tfoot>{totals}</tfoot></table></main></body></html>",
            title = esc(&self.title),
            seller = lines(&self.seller),
            buyer = lines(&self.buyer),
        )
    }

    /// The document as a PDF: A4 pages, Helvetica, as many pages as the lines need.
    pub fn pdf(&self) -> Vec<u8> {
        let mut pages = Pages::default();
        pages.text(&self.title, BOLD, 18.0, LEFT);
        pages.gap(10.0);
        pages.text("From", BOLD, 10.0, LEFT);
        for s in &self.seller {
            pages.text(s, REGULAR, 10.0, LEFT);
        }
        pages.gap(6.0);
        pages.text("Bill to", BOLD, 10.0, LEFT);
        for s in &self.buyer {
            pages.text(s, REGULAR, 10.0, LEFT);
        }
        pages.gap(6.0);
        for (k, v) in &self.facts {
            pages.row(&[(k, LEFT, BOLD), (v, 150.0, REGULAR)]);
        }
        pages.gap(10.0);
        pages.row(&[
            ("Description", LEFT, BOLD),
            ("Quantity", -360.0, BOLD),
            ("Unit price", -445.0, BOLD),
            ("Amount", -RIGHT, BOLD),
        ]);
        for r in &self.rows {
            pages.row(&[
                (&r[0], LEFT, REGULAR),
                (&r[1], -360.0, REGULAR),
                (&r[2], -445.0, REGULAR),
                (&r[3], -RIGHT, REGULAR),
            ]);
        }
        pages.gap(8.0);
        for (k, v) in &self.totals {
            let font = if k == "Total" || k == "Amount due" { BOLD } else { REGULAR };
            pages.row(&[(k, 330.0, font), (v, -RIGHT, font)]);
        }
        pages.finish()
    }
}

const REGULAR: &[u8] = b"F1";
const BOLD: &[u8] = b"F2";
const LEFT: f32 = 50.0;
/// The right margin; a negative x right-aligns text there.
const RIGHT: f32 = 545.0;
const TOP: f32 = 792.0;
const BOTTOM: f32 = 60.0;
const LEADING: f32 = 15.0;

/// Page contents, filled top to bottom; a new page when one is full.
#[derive(Default)]
struct Pages {
    done: Vec<Vec<u8>>,
    current: Option<Content>,
    y: f32,
}

impl Pages {
    fn content(&mut self) -> &mut Content {
        if self.current.is_none() || self.y < BOTTOM {
            if let Some(full) = self.current.take() {
                self.done.push(full.finish());
            }
            self.current = Some(Content::new());
            self.y = TOP;
        }
        self.current.as_mut().expect("a page")
    }

    fn gap(&mut self, h: f32) {
        self.y -= h;
    }

    fn text(&mut self, s: &str, font: &[u8], size: f32, x: f32) {
        self.content();
        let y = self.y;
        put(self.current.as_mut().expect("a page"), s, font, size, x, y);
        self.y -= size + 5.0;
    }

    /// One row of cells at their x (negative: right-aligned there), 10 pt.
    fn row(&mut self, cells: &[(&str, f32, &[u8])]) {
        self.content();
        let y = self.y;
        let content = self.current.as_mut().expect("a page");
        for (s, x, font) in cells {
            let x = if *x < 0.0 { -x - width(s, 10.0) } else { *x };
            put(content, s, font, 10.0, x, y);
        }
        self.y -= LEADING;
    }

    fn finish(mut self) -> Vec<u8> {
        if let Some(last) = self.current.take() {
            self.done.push(last.finish());
        }
        let mut pdf = Pdf::new();
        let (catalog, tree, regular, bold) = (Ref::new(1), Ref::new(2), Ref::new(3), Ref::new(4));
        pdf.catalog(catalog).pages(tree);
        let page_ids: Vec<Ref> = (0..self.done.len()).map(|n| Ref::new(5 + 2 * n as i32)).collect();
        pdf.pages(tree).kids(page_ids.iter().copied()).count(page_ids.len() as i32);
        for (n, content) in self.done.iter().enumerate() {
            let (page_id, content_id) = (page_ids[n], Ref::new(6 + 2 * n as i32));
            let mut page = pdf.page(page_id);
            page.media_box(Rect::new(0.0, 0.0, 595.0, 842.0));
            page.parent(tree);
            page.contents(content_id);
            let mut resources = page.resources();
            resources.fonts().pair(Name(REGULAR), regular).pair(Name(BOLD), bold);
            resources.finish();
            page.finish();
            pdf.stream(content_id, content);
        }
        let win_ansi = Name(b"WinAnsiEncoding");
        pdf.type1_font(regular).base_font(Name(b"Helvetica")).encoding_predefined(win_ansi);
        pdf.type1_font(bold).base_font(Name(b"Helvetica-Bold")).encoding_predefined(win_ansi);
        pdf.finish()
    }
}

fn put(content: &mut Content, s: &str, font: &[u8], size: f32, x: f32, y: f32) {
    content.begin_text();
    content.set_font(Name(font), size);
    content.next_line(x, y);
    content.show(Str(&win_ansi(s)));
    content.end_text();
}

/// Text in the standard fonts' WinAnsi encoding (Latin-1 and a few more;
/// anything else shows as `?`).
fn win_ansi(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| match c {
            '\u{20}'..='\u{7e}' | '\u{a0}'..='\u{ff}' => c as u32 as u8,
            '€' => 0x80,
            '–' => 0x96,
            '—' => 0x97,
            '‘' => 0x91,
            '’' => 0x92,
            '“' => 0x93,
            '”' => 0x94,
            '•' => 0x95,
            _ => b'?',
        })
        .collect()
}

/// The width of `s` in Helvetica at `size` (digits and punctuation exact,
/// other characters at the width of a digit).
fn width(s: &str, size: f32) -> f32 {
    let units: u32 = s
        .chars()
        .map(|c| match c {
            '.' | ',' | ' ' => 278,
            '-' => 333,
            _ => 556,
        })
        .sum();
    units as f32 * size / 1000.0
}
