//! Paged lists: [`ListRequest`] (what to list, with filter and ordering), [`Pager`] (page by
//! page) and [`LoketClient::get_all`] (everything, or a clear error).
//!
//! The client follows `totalPages` from each response and never assumes the requested
//! `pageSize` was honoured. If the page count or total changes between pages, or the pages do not
//! add up to `totalSize`, the list changed under us: [`Pager`] reports
//! [`LoketError::InconsistentPaging`] (the caller must drop the pages it got), and `get_all`
//! starts over, a bounded number of times.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;

use super::client::LoketClient;
use super::error::LoketError;
use super::models::ListEnvelope;
use super::resources::Resource;

/// More pages than this is taken as a broken answer, not as data.
pub const MAX_TOTAL_PAGES: i64 = 100_000;

/// How often `get_all` starts over when the list changed while paging.
const MAX_RESTARTS: usize = 2;

/// A list to read: resource, path and query, typed by the item it yields.
pub struct ListRequest<T> {
    pub(crate) resource: Resource,
    pub(crate) path: String,
    pub(crate) query: Vec<(&'static str, String)>,
    _item: PhantomData<fn() -> T>,
}

impl<T> Clone for ListRequest<T> {
    fn clone(&self) -> Self {
        ListRequest {
            resource: self.resource,
            path: self.path.clone(),
            query: self.query.clone(),
            _item: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for ListRequest<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListRequest")
            .field("resource", &self.resource)
            .field("path", &self.path)
            .field("query", &self.query)
            .finish()
    }
}

impl<T> ListRequest<T> {
    pub(crate) fn new(resource: Resource, path: String) -> Self {
        ListRequest {
            resource,
            path,
            query: Vec::new(),
            _item: PhantomData,
        }
    }

    /// Adds a Loket `filter` expression (for example `lastModifiedVersionNumber gt 5`).
    pub fn filter(mut self, expression: impl Into<String>) -> Self {
        self.query.push(("filter", expression.into()));
        self
    }

    /// Adds a Loket `orderBy` (for example `-lastModifiedVersionNumber`).
    pub fn order_by(mut self, fields: impl Into<String>) -> Self {
        self.query.push(("orderBy", fields.into()));
        self
    }

    pub(crate) fn param(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.query.push((name, value.into()));
        self
    }

    /// The request path (ids only).
    pub fn path(&self) -> &str {
        &self.path
    }
}

/// One page of a list.
#[derive(Clone, Debug)]
pub struct Page<T> {
    /// The items on this page.
    pub items: Vec<T>,
    /// This page's number (1-based).
    pub page_number: i64,
    /// The number of pages the server reported.
    pub total_pages: i64,
    /// The number of items the server reported.
    pub total_size: Option<i64>,
}

/// The paging fields of one response.
#[derive(Clone, Copy, Debug)]
struct PageMeta {
    total_pages: Option<i64>,
    total_size: Option<i64>,
    current_page: Option<i64>,
    items: usize,
}

/// What the pages so far said, to check the next one against.
#[derive(Clone, Debug, Default)]
struct PagingState {
    total_pages: Option<i64>,
    total_size: Option<i64>,
    seen: u64,
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    More,
    Last,
}

#[derive(Debug, PartialEq, Eq)]
enum PagingProblem {
    /// The response itself is unusable.
    Malformed(&'static str),
    /// The response does not fit with the pages before it.
    Inconsistent(String),
}

impl PagingState {
    /// Checks page `number` against what came before and records it.
    fn accept(&mut self, number: i64, meta: PageMeta) -> Result<Verdict, PagingProblem> {
        let total_pages = meta.total_pages.ok_or(PagingProblem::Malformed(
            "the list response has no totalPages",
        ))?;
        if !(0..=MAX_TOTAL_PAGES).contains(&total_pages) {
            return Err(PagingProblem::Malformed(
                "the list response has an impossible totalPages",
            ));
        }
        if meta.total_size.is_some_and(|s| s < 0) {
            return Err(PagingProblem::Malformed(
                "the list response has a negative totalSize",
            ));
        }
        if let Some(current) = meta.current_page
            && current != number
        {
            return Err(PagingProblem::Inconsistent(format!(
                "asked for page {number}, got page {current}"
            )));
        }
        if number > 1 {
            if Some(total_pages) != self.total_pages {
                return Err(PagingProblem::Inconsistent(format!(
                    "totalPages changed from {} to {total_pages} while paging",
                    self.total_pages.unwrap_or_default()
                )));
            }
            if meta.total_size != self.total_size {
                return Err(PagingProblem::Inconsistent(
                    "totalSize changed while paging".to_owned(),
                ));
            }
        }
        if number < total_pages && meta.items == 0 {
            return Err(PagingProblem::Inconsistent(format!(
                "page {number} of {total_pages} is empty"
            )));
        }
        self.total_pages = Some(total_pages);
        self.total_size = meta.total_size;
        self.seen += meta.items as u64;
        if let Some(expected) = meta.total_size
            && i64::try_from(self.seen).map_or(true, |seen| seen > expected)
        {
            return Err(PagingProblem::Inconsistent(format!(
                "the pages held more items ({}) than totalSize ({expected})",
                self.seen
            )));
        }
        if number < total_pages {
            return Ok(Verdict::More);
        }
        if let Some(expected) = meta.total_size
            && i64::try_from(self.seen).ok() != Some(expected)
        {
            return Err(PagingProblem::Inconsistent(format!(
                "the pages held {} items but totalSize is {expected}",
                self.seen
            )));
        }
        Ok(Verdict::Last)
    }
}

/// Reads a list page by page. Obtain one with [`LoketClient::pager`].
pub struct Pager<T> {
    client: LoketClient,
    request: ListRequest<T>,
    next_page: i64,
    state: PagingState,
    done: bool,
}

impl<T> std::fmt::Debug for Pager<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pager")
            .field("path", &self.request.path)
            .field("next_page", &self.next_page)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<T: DeserializeOwned> Pager<T> {
    /// The next page, or `None` after the last one. After an error the pager is finished; an
    /// [`LoketError::InconsistentPaging`] means the pages already returned must be discarded.
    pub async fn next_page(&mut self) -> Result<Option<Page<T>>, LoketError> {
        if self.done {
            return Ok(None);
        }
        let result = self.fetch_next().await;
        if result.is_err() {
            self.done = true;
        }
        result
    }

    async fn fetch_next(&mut self) -> Result<Option<Page<T>>, LoketError> {
        let number = self.next_page;
        let mut query = self.request.query.clone();
        query.push(("pageNumber", number.to_string()));
        query.push(("pageSize", self.client.page_size().to_string()));
        let envelope: ListEnvelope<T> = self
            .client
            .get_json(self.request.resource, &self.request.path, &query)
            .await?;
        let meta = PageMeta {
            total_pages: envelope.total_pages,
            total_size: envelope.total_size,
            current_page: envelope.current_page,
            items: envelope.embedded.len(),
        };
        let verdict = self.state.accept(number, meta).map_err(|p| match p {
            PagingProblem::Malformed(detail) => LoketError::MalformedBody {
                path: self.request.path.clone(),
                detail: detail.to_owned(),
            },
            PagingProblem::Inconsistent(detail) => LoketError::InconsistentPaging {
                path: self.request.path.clone(),
                detail,
            },
        })?;
        match verdict {
            Verdict::More => self.next_page = number + 1,
            Verdict::Last => self.done = true,
        }
        Ok(Some(Page {
            items: envelope.embedded,
            page_number: number,
            total_pages: self.state.total_pages.unwrap_or_default(),
            total_size: self.state.total_size,
        }))
    }
}

impl LoketClient {
    /// Reads `request` page by page.
    pub fn pager<T: DeserializeOwned>(&self, request: ListRequest<T>) -> Pager<T> {
        Pager {
            client: self.clone(),
            request,
            next_page: 1,
            state: PagingState::default(),
            done: false,
        }
    }

    /// Reads every page of `request`. If the list changes while paging, starts over (twice at
    /// most) and then fails with [`LoketError::InconsistentPaging`]; never returns a partial list.
    pub async fn get_all<T: DeserializeOwned>(
        &self,
        request: ListRequest<T>,
    ) -> Result<Vec<T>, LoketError> {
        let mut restarts = 0;
        loop {
            let mut pager = self.pager(request.clone());
            let mut items = Vec::new();
            let outcome = loop {
                match pager.next_page().await {
                    Ok(Some(page)) => items.extend(page.items),
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(e),
                }
            };
            match outcome {
                Ok(()) => return Ok(items),
                Err(LoketError::InconsistentPaging { detail, .. }) if restarts < MAX_RESTARTS => {
                    restarts += 1;
                    tracing::info!(
                        path = request.path(),
                        restarts,
                        detail,
                        "loket list changed while paging; reading it again"
                    );
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(total_pages: i64, total_size: i64, current: i64, items: usize) -> PageMeta {
        PageMeta {
            total_pages: Some(total_pages),
            total_size: Some(total_size),
            current_page: Some(current),
            items,
        }
    }

    #[test]
    fn follows_total_pages_not_the_requested_size() {
        // 50 items at a server maximum of 7: 8 pages, the last with 1 item.
        let mut s = PagingState::default();
        for n in 1..8 {
            assert_eq!(s.accept(n, meta(8, 50, n, 7)), Ok(Verdict::More));
        }
        assert_eq!(s.accept(8, meta(8, 50, 8, 1)), Ok(Verdict::Last));
    }

    #[test]
    fn empty_lists_and_missing_optional_fields() {
        let mut s = PagingState::default();
        assert_eq!(s.accept(1, meta(0, 0, 1, 0)), Ok(Verdict::Last));
        let mut s = PagingState::default();
        let m = PageMeta {
            total_pages: Some(1),
            total_size: None,
            current_page: None,
            items: 3,
        };
        assert_eq!(s.accept(1, m), Ok(Verdict::Last));
    }

    #[test]
    fn rejects_broken_or_changing_paging() {
        let inconsistent = |r: Result<Verdict, PagingProblem>| {
            assert!(matches!(r, Err(PagingProblem::Inconsistent(_))), "{r:?}")
        };
        let mut s = PagingState::default();
        assert!(matches!(
            s.accept(
                1,
                PageMeta {
                    total_pages: None,
                    ..meta(1, 1, 1, 1)
                }
            ),
            Err(PagingProblem::Malformed(_))
        ));
        assert!(matches!(
            s.accept(1, meta(MAX_TOTAL_PAGES + 1, 1, 1, 1)),
            Err(PagingProblem::Malformed(_))
        ));
        assert!(matches!(
            s.accept(1, meta(-1, 1, 1, 1)),
            Err(PagingProblem::Malformed(_))
        ));

        // The page count grows between pages.
        let mut s = PagingState::default();
        s.accept(1, meta(3, 21, 1, 7)).unwrap();
        inconsistent(s.accept(2, meta(4, 22, 2, 7)));
        // The total changes while the page count does not.
        let mut s = PagingState::default();
        s.accept(1, meta(3, 21, 1, 7)).unwrap();
        inconsistent(s.accept(2, meta(3, 20, 2, 7)));
        // The server ignores pageNumber.
        let mut s = PagingState::default();
        s.accept(1, meta(3, 21, 1, 7)).unwrap();
        inconsistent(s.accept(2, meta(3, 21, 1, 7)));
        // A middle page is empty.
        let mut s = PagingState::default();
        s.accept(1, meta(3, 21, 1, 7)).unwrap();
        inconsistent(s.accept(2, meta(3, 21, 2, 0)));
        // The pages do not add up to totalSize.
        let mut s = PagingState::default();
        s.accept(1, meta(2, 14, 1, 7)).unwrap();
        inconsistent(s.accept(2, meta(2, 14, 2, 6)));
        // More items than totalSize.
        let mut s = PagingState::default();
        inconsistent(s.accept(1, meta(2, 5, 1, 7)));
    }
}
