//! Paging: a `Stream` of items that follows `@odata.nextLink` until it is absent
//! (<https://learn.microsoft.com/graph/paging>).

use std::collections::VecDeque;

use futures::stream::{self, BoxStream, StreamExt};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::client::GraphClient;
use super::error::{GraphError, GraphErrorKind};
use super::request::Request;

/// Graph's largest page size (`$top` 1-999).
pub const MAX_PAGE_SIZE: u32 = 999;

/// One page of a collection.
#[derive(Deserialize)]
struct Page<T> {
    /// The items.
    #[serde(default = "Vec::new")]
    value: Vec<T>,
    /// The opaque link to the next page, absent on the last.
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
}

/// Iteration state.
struct State<T> {
    client: GraphClient,
    next: Option<Request>,
    buffer: VecDeque<T>,
    pending_error: Option<GraphError>,
}

impl GraphClient {
    /// Streams every item of a collection, page by page. The first request is sent as given
    /// (add `$top=999`, `$select`, `$filter` to it); later pages follow `@odata.nextLink`
    /// verbatim, keep the request's headers (e.g. `ConsistencyLevel`) and must stay on the
    /// Graph host. The stream ends after the first error.
    pub fn paged<T>(&self, first: Request) -> BoxStream<'static, Result<T, GraphError>>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let state = State {
            client: self.clone(),
            next: Some(first),
            buffer: VecDeque::new(),
            pending_error: None,
        };
        stream::unfold(state, |mut st| async move {
            loop {
                if let Some(item) = st.buffer.pop_front() {
                    return Some((Ok(item), st));
                }
                if let Some(e) = st.pending_error.take() {
                    return Some((Err(e), st));
                }
                let req = st.next.take()?;
                let page = match st
                    .client
                    .execute(&req)
                    .await
                    .and_then(|r| r.json::<Page<T>>())
                {
                    Ok(p) => p,
                    Err(e) => return Some((Err(e), st)),
                };
                st.buffer.extend(page.value);
                if let Some(url) = page.next_link {
                    if st.client.same_origin(&url) {
                        st.next = Some(req.next_page(url));
                    } else {
                        st.pending_error = Some(
                            GraphError::new(
                                GraphErrorKind::Refused,
                                "nextLink points to another host",
                            )
                            .with_request(req.describe()),
                        );
                    }
                }
            }
        })
        .boxed()
    }
}
