//! Signing in to the portal by e-mail code, on SQLite and PostgreSQL, the
//! code read from a real SMTP receiver: wrong codes counted, a code used
//! once, five wrong tries lock the address for 15 minutes (asking again
//! does not reset the tries), an unknown address looks the same and gets
//! no mail, customers sharing an address choose one. Without an SMTP server
//! the message waits in the outbox, which `kelviq mail list` prints.

use crate::common::smtp::SmtpReceiver;
use crate::common::{Backend, TestServer};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::json;

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn ask(s: &TestServer, email: &str) -> (u16, String) {
    let res =
        client().post(s.url("/portal/demo/sign-in")).form(&[("email", email), ("mode", "test")]).send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

async fn type_code(s: &TestServer, email: &str, code: &str) -> reqwest::Response {
    client()
        .post(s.url("/portal/demo/sign-in/code"))
        .form(&[("email", email), ("code", code), ("mode", "test")])
        .send()
        .await
        .unwrap()
}

/// The code in the newest message's subject.
fn code_in(m: &crate::common::smtp::Delivered) -> String {
    let subject = m.data.lines().find(|l| l.starts_with("Subject: ")).expect("a subject");
    subject["Subject: ".len().."Subject: ".len() + 6].to_string()
}

fn wrong(code: &str) -> String {
    format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000)
}

async fn sign_in_by_email_code(backend: Backend) {
    let smtp = SmtpReceiver::start().await;
    let url = smtp.url.clone();
    let s = TestServer::start_with(backend, move |c| {
        c.smtp_url = Some(url);
        c.mail_from = "Demo <billing@demo.test>".into();
    })
    .await;
    s.post_ok("/api/v1/customers/", json!({"customerId": "ann", "email": "Ann@Example.com", "name": "Ann"})).await;

    let page = reqwest::get(s.url("/portal/demo/sign-in?mode=test")).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Send me a code"));
    let (status, html) = ask(&s, "ann@example.com").await;
    assert_eq!(status, 200);
    assert!(html.contains("Check your email"));
    let mail = smtp.wait_for(1).await;
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0].to, ["<ann@example.com>"]);
    assert!(mail[0].from.contains("billing@demo.test"));
    let code = code_in(&mail[0]);
    assert!(mail[0].data.contains(&format!("is {code}.")), "{}", mail[0].data);

    // A wrong code is counted; the right one signs in once.
    let res = type_code(&s, "ann@example.com", &wrong(&code)).await;
    assert_eq!(res.status(), 401);
    assert!(res.text().await.unwrap().contains("4 tries left"));
    let res = type_code(&s, "ann@example.com", &code).await;
    assert_eq!(res.status(), 303);
    let to = res.headers()[LOCATION].to_str().unwrap().to_string();
    assert!(to.starts_with("/portal/demo/?token=cpt-"), "{to}");
    let opened = client().get(s.url(&to)).send().await.unwrap();
    let cookie = opened.headers()[SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_string();
    let portal = client().get(s.url("/portal/demo/")).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(portal.status(), 200);
    assert!(portal.text().await.unwrap().contains("Signed in as Ann@Example.com"));
    assert_eq!(type_code(&s, "ann@example.com", &code).await.status(), 401, "a code works once");

    // Five wrong tries lock the address, even for the right code; asking again does not reset them.
    ask(&s, "ann@example.com").await;
    let code = code_in(&smtp.wait_for(2).await[1]);
    for _ in 0..2 {
        type_code(&s, "ann@example.com", &wrong(&code)).await;
    }
    ask(&s, "ann@example.com").await;
    let code = code_in(&smtp.wait_for(3).await[2]);
    for left in [2, 1] {
        let res = type_code(&s, "ann@example.com", &wrong(&code)).await;
        assert!(res.text().await.unwrap().contains(&format!("{left} tr")), "tries carried over");
    }
    let res = type_code(&s, "ann@example.com", &wrong(&code)).await;
    assert_eq!(res.status(), 429);
    assert_eq!(type_code(&s, "ann@example.com", &code).await.status(), 429);
    assert_eq!(ask(&s, "ann@example.com").await.0, 429);
    assert_eq!(smtp.messages().len(), 3, "no code is sent while locked");
    s.post_ok("/api/v1/test-clock/advance/", json!({"to": "2026-01-31T10:15:01Z"})).await;
    assert_eq!(ask(&s, "ann@example.com").await.0, 200);
    assert_eq!(smtp.wait_for(4).await.len(), 4);

    // An unknown address: the same page, no mail.
    let (status, html) = ask(&s, "nobody@example.com").await;
    assert_eq!(status, 200);
    assert!(html.contains("If nobody@example.com belongs to an account"));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(smtp.messages().len(), 4);

    // Two customers share an address: choose one.
    s.post_ok("/api/v1/customers/", json!({"customerId": "team-a", "email": "ops@example.com", "name": "Team A"}))
        .await;
    s.post_ok("/api/v1/customers/", json!({"customerId": "team-b", "email": "ops@example.com"})).await;
    ask(&s, "ops@example.com").await;
    let code = code_in(&smtp.wait_for(5).await[4]);
    let res = type_code(&s, "ops@example.com", &code).await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("Choose an account") && html.contains("Team A (team-a)") && html.contains(">team-b<"),
        "{html}"
    );
}

async fn without_smtp_mail_waits_in_the_outbox(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.post_ok("/api/v1/customers/", json!({"customerId": "bo", "email": "bo@example.com"})).await;
    assert_eq!(ask(&s, "bo@example.com").await.0, 200);
    let mail = s.store.list_mail(10).await.unwrap();
    assert_eq!(mail.len(), 1);
    assert_eq!((mail[0].to.as_str(), mail[0].sent_at, mail[0].error.as_deref()), ("bo@example.com", None, None));
    let code = &mail[0].subject[..6];
    assert_eq!(type_code(&s, "bo@example.com", code).await.status(), 303);
    if backend == Backend::Sqlite {
        let out = crate::common::process::kelviq(&[("DATABASE_URL", s.config.database_url.as_deref().unwrap())])
            .args(["mail", "list"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains("to bo@example.com (kept (no SMTP server))") && text.contains(code), "{text}");
    }
}

on_both_backends!(sign_in_by_email_code, without_smtp_mail_waits_in_the_outbox);
