//! The future of [`Producer::send_async`](super::Producer::send_async), needing no particular
//! async runtime.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_channel::oneshot;

use crate::delivery::DeliveryReport;
use crate::error::{Error, ErrorKind, Result};

/// The future returned by [`Producer::send_async`]: the report when delivered, the error otherwise.
#[must_use = "the outcome of a send is only known by awaiting its future"]
pub struct DeliveryFuture {
    state: FutureState,
}

impl DeliveryFuture {
    pub(crate) fn waiting(receiver: oneshot::Receiver<DeliveryReport>) -> DeliveryFuture {
        DeliveryFuture {
            state: FutureState::Waiting(receiver),
        }
    }

    pub(crate) fn failed(error: Error) -> DeliveryFuture {
        DeliveryFuture {
            state: FutureState::Failed(Some(error)),
        }
    }
}

enum FutureState {
    Waiting(oneshot::Receiver<DeliveryReport>),
    Failed(Option<Error>),
}

impl Future for DeliveryFuture {
    type Output = Result<DeliveryReport>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            FutureState::Failed(error) => Poll::Ready(Err(error
                .take()
                .expect("DeliveryFuture polled after it completed"))),
            FutureState::Waiting(receiver) => match Pin::new(receiver).poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Ok(report)) => Poll::Ready(report.into_result()),
                Poll::Ready(Err(oneshot::Canceled)) => Poll::Ready(Err(Error::new(
                    ErrorKind::Internal,
                    "the delivery report was lost",
                ))),
            },
        }
    }
}
