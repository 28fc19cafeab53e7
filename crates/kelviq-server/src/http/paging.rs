//! A list the store counts and slices in one call, answered as a page.

use crate::http::error::ApiResult;
use crate::http::extract::{Page, Paging, DEFAULT_PAGE_SIZE};
use axum::http::request::Parts;

/// One page of a list the store counts and slices in one call: the page's
/// window is resolved against the count (a second call for `page=last`).
pub async fn paged<T, F, Fut>(parts: &Parts, fetch: F) -> ApiResult<Page<T>>
where
    F: Fn(i64, i64) -> Fut,
    Fut: std::future::Future<Output = Result<(i64, Vec<T>), kelviq_store::StoreError>>,
{
    let mut paging = Paging::from_parts(parts, DEFAULT_PAGE_SIZE)?;
    if paging.page == u64::MAX {
        let (total, _) = fetch(0, 0).await?;
        paging.window(total as u64)?;
    }
    let offset = (paging.page.min(1 << 40) - 1) * paging.size;
    let (total, items) = fetch(paging.size as i64, offset as i64).await?;
    paging.window(total as u64)?;
    Ok(paging.page(total as u64, items))
}

pub fn map_page<T, U>(page: Page<T>, f: impl FnMut(T) -> U) -> Page<U> {
    Page {
        count: page.count,
        next: page.next,
        previous: page.previous,
        results: page.results.into_iter().map(f).collect(),
    }
}
