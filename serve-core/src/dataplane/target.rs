//! [`CallTarget`]: what a handle's stubs call through: the deployment's router, and the options
//! the handle was made with (`handle.options()`: today the multiplexed model id).

use std::ops::Deref;
use std::sync::Arc;

use super::router::RequestRouter;

/// A deployment's router with the options of one handle. Cheap to clone: a handle without options
/// costs what its router's `Arc` costs, and its calls check one `None`.
#[doc(hidden)]
pub struct CallTarget<D> {
    router: Arc<RequestRouter<D>>,
    /// The model each call is sent for (model multiplexing), if any.
    model_id: Option<Arc<str>>,
}

impl<D> CallTarget<D> {
    /// The plain target of `router`: no options.
    pub(crate) fn new(router: Arc<RequestRouter<D>>) -> Self {
        Self {
            router,
            model_id: None,
        }
    }

    /// The same router, each call sent for model `model_id` (`None`: no model).
    pub(crate) fn with_model_id(&self, model_id: Option<Arc<str>>) -> Self {
        Self {
            router: self.router.clone(),
            model_id,
        }
    }

    /// The router.
    #[inline]
    pub(crate) fn router(&self) -> &Arc<RequestRouter<D>> {
        &self.router
    }

    /// The model id its calls are sent for.
    #[inline]
    pub(crate) fn model_id(&self) -> Option<&Arc<str>> {
        self.model_id.as_ref()
    }
}

impl<D> Clone for CallTarget<D> {
    #[inline]
    fn clone(&self) -> Self {
        Self {
            router: self.router.clone(),
            model_id: self.model_id.clone(),
        }
    }
}

/// The generated handle reads its router through the target (`__router`, `unknown_method`).
impl<D> Deref for CallTarget<D> {
    type Target = Arc<RequestRouter<D>>;

    #[inline]
    fn deref(&self) -> &Arc<RequestRouter<D>> {
        &self.router
    }
}
