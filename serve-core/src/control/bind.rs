//! Handles inside constructor arguments: [`Bindable`], the shapes `bind` wires.
//!
//! A constructor parameter may hold deployment handles anywhere in a `Vec`, an `Option`, a
//! `HashMap` or `BTreeMap` (as values), an array or a tuple, nested as deep as you like. `bind`
//! takes the same shape with an [`Application<D>`] in place of each `DeploymentHandle<D>`: every
//! application in it becomes a child of the bound deployment (deployed first, in the order the
//! shape lists them), and each replica's constructor gets the shape back with the children's
//! handles. `#[deployment]` recognises the shapes by their names and writes `bind`'s parameter
//! type itself; the trait does the walking.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hash};

use super::application::{AppRef, Application, BuildContext};
use crate::api::deployment::Deployment;
use crate::api::handle::DeploymentHandle;

/// A constructor parameter that holds deployment handles, which `bind` wires.
///
/// `bind` takes [`Bound`](Self::Bound) in its place: the same shape with an [`Application<D>`]
/// for each `DeploymentHandle<D>`. Implemented for `DeploymentHandle<D>` and, for any `T` that
/// is `Bindable`, for `Vec<T>`, `Option<T>`, `HashMap<K, T>` (with `K: Ord`), `BTreeMap<K, T>`, `[T; N]` and
/// tuples of up to six bindables.
///
/// | the constructor takes | `bind` takes |
/// |---|---|
/// | `DeploymentHandle<M>` | `Application<M>` |
/// | `Vec<DeploymentHandle<M>>` | `Vec<Application<M>>` |
/// | `HashMap<String, DeploymentHandle<M>>` | `HashMap<String, Application<M>>` |
/// | `Option<DeploymentHandle<M>>` | `Option<Application<M>>` |
/// | `(DeploymentHandle<A>, [DeploymentHandle<B>; 2])` | `(Application<A>, [Application<B>; 2])` |
///
/// A handle anywhere else (a field of your own struct, an `Arc` or `Rc`) is not wired: the
/// macro rejects the types it can see into, and a struct of your own is an ordinary value. The
/// trait is sealed: `#[deployment]` recognises these shapes by name, so an implementation for
/// another type would never be used.
#[diagnostic::on_unimplemented(
    message = "`{Self}` holds deployment handles that `bind` cannot wire",
    note = "`bind` wires a `DeploymentHandle<D>` on its own or inside `Vec`, `Option`, `HashMap`, `BTreeMap`, arrays and tuples of them"
)]
pub trait Bindable: sealed::Sealed + Sized + Send + 'static {
    /// What `bind` takes for this parameter: the same shape, applications for handles.
    type Bound: Send + Sync + 'static;

    /// Appends every application in `bound`, in order.
    #[doc(hidden)]
    fn __children(bound: &Self::Bound, out: &mut Vec<AppRef>);

    /// The shape with each application's handle (its deployment is already deployed).
    #[doc(hidden)]
    fn __handles(bound: &Self::Bound, ctx: &BuildContext) -> Self;
}

mod sealed {
    /// Implemented for exactly the types `Bindable` is.
    pub trait Sealed {}
}

impl<D: Deployment> sealed::Sealed for DeploymentHandle<D> {}
impl<T: Bindable> sealed::Sealed for Vec<T> {}
impl<T: Bindable> sealed::Sealed for Option<T> {}
impl<T: Bindable, const N: usize> sealed::Sealed for [T; N] {}
impl<K, T: Bindable, S> sealed::Sealed for HashMap<K, T, S> {}
impl<K, T: Bindable> sealed::Sealed for BTreeMap<K, T> {}

impl<D: Deployment> Bindable for DeploymentHandle<D> {
    type Bound = Application<D>;

    fn __children(bound: &Application<D>, out: &mut Vec<AppRef>) {
        out.push(bound.__node());
    }

    fn __handles(bound: &Application<D>, ctx: &BuildContext) -> Self {
        ctx.handle(bound)
    }
}

impl<T: Bindable> Bindable for Vec<T> {
    type Bound = Vec<T::Bound>;

    fn __children(bound: &Self::Bound, out: &mut Vec<AppRef>) {
        for b in bound {
            T::__children(b, out);
        }
    }

    fn __handles(bound: &Self::Bound, ctx: &BuildContext) -> Self {
        bound.iter().map(|b| T::__handles(b, ctx)).collect()
    }
}

impl<T: Bindable> Bindable for Option<T> {
    type Bound = Option<T::Bound>;

    fn __children(bound: &Self::Bound, out: &mut Vec<AppRef>) {
        if let Some(b) = bound {
            T::__children(b, out);
        }
    }

    fn __handles(bound: &Self::Bound, ctx: &BuildContext) -> Self {
        bound.as_ref().map(|b| T::__handles(b, ctx))
    }
}

impl<T: Bindable, const N: usize> Bindable for [T; N] {
    type Bound = [T::Bound; N];

    fn __children(bound: &Self::Bound, out: &mut Vec<AppRef>) {
        for b in bound {
            T::__children(b, out);
        }
    }

    fn __handles(bound: &Self::Bound, ctx: &BuildContext) -> Self {
        std::array::from_fn(|i| T::__handles(&bound[i], ctx))
    }
}

/// The keys are cloned into each replica's map. The children are deployed in key order, not in
/// the map's iteration order, which differs from run to run and from process to process: names
/// like `Model_1` must be the same in every run (a config file addresses deployments by name) and
/// in every process of a cluster.
impl<K, T, S> Bindable for HashMap<K, T, S>
where
    K: Clone + Ord + Hash + Send + Sync + 'static,
    T: Bindable,
    S: BuildHasher + Clone + Send + Sync + 'static,
{
    type Bound = HashMap<K, T::Bound, S>;

    fn __children(bound: &Self::Bound, out: &mut Vec<AppRef>) {
        let mut entries: Vec<(&K, &T::Bound)> = bound.iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for (_, b) in entries {
            T::__children(b, out);
        }
    }

    fn __handles(bound: &Self::Bound, ctx: &BuildContext) -> Self {
        let mut map = HashMap::with_capacity_and_hasher(bound.len(), bound.hasher().clone());
        map.extend(bound.iter().map(|(k, b)| (k.clone(), T::__handles(b, ctx))));
        map
    }
}

/// The children are deployed in key order.
impl<K, T> Bindable for BTreeMap<K, T>
where
    K: Clone + Ord + Send + Sync + 'static,
    T: Bindable,
{
    type Bound = BTreeMap<K, T::Bound>;

    fn __children(bound: &Self::Bound, out: &mut Vec<AppRef>) {
        for b in bound.values() {
            T::__children(b, out);
        }
    }

    fn __handles(bound: &Self::Bound, ctx: &BuildContext) -> Self {
        bound
            .iter()
            .map(|(k, b)| (k.clone(), T::__handles(b, ctx)))
            .collect()
    }
}

macro_rules! tuples {
    ($(($($t:ident $i:tt),+))+) => {$(
        impl<$($t: Bindable),+> sealed::Sealed for ($($t,)+) {}

        impl<$($t: Bindable),+> Bindable for ($($t,)+) {
            type Bound = ($($t::Bound,)+);

            fn __children(bound: &Self::Bound, out: &mut Vec<AppRef>) {
                $($t::__children(&bound.$i, out);)+
            }

            fn __handles(bound: &Self::Bound, ctx: &BuildContext) -> Self {
                ($($t::__handles(&bound.$i, ctx),)+)
            }
        }
    )+};
}

tuples! {
    (A 0)
    (A 0, B 1)
    (A 0, B 1, C 2)
    (A 0, B 1, C 2, E 3)
    (A 0, B 1, C 2, E 3, F 4)
    (A 0, B 1, C 2, E 3, F 4, G 5)
}
