//! Test-only helpers shared by unit tests across modules.

use std::future::Future;
use std::pin::Pin;

pub(crate) type BoxFut<'a, T> = Pin<Box<dyn Future<Output = object_store::Result<T>> + Send + 'a>>;

/// Implements `ObjectStore` for a test wrapper that has an `inner` store and two async methods,
/// `do_put(&self, &Path, PutPayload, PutOptions)` and `do_get(&self, &Path, GetOptions)`, where
/// it injects its behaviour; everything else goes straight to `inner`. Written out because the
/// trait is declared with async_trait's lifetimes.
macro_rules! delegating_object_store {
    ($ty:ty) => {
        impl object_store::ObjectStore for $ty {
            fn put_opts<'l0, 'l1, 'at>(
                &'l0 self,
                location: &'l1 object_store::path::Path,
                payload: object_store::PutPayload,
                opts: object_store::PutOptions,
            ) -> $crate::test_support::BoxFut<'at, object_store::PutResult>
            where
                'l0: 'at,
                'l1: 'at,
                Self: 'at,
            {
                Box::pin(self.do_put(location, payload, opts))
            }

            fn put_multipart_opts<'l0, 'l1, 'at>(
                &'l0 self,
                location: &'l1 object_store::path::Path,
                opts: object_store::PutMultipartOptions,
            ) -> $crate::test_support::BoxFut<'at, Box<dyn object_store::MultipartUpload>>
            where
                'l0: 'at,
                'l1: 'at,
                Self: 'at,
            {
                self.inner.put_multipart_opts(location, opts)
            }

            fn get_opts<'l0, 'l1, 'at>(
                &'l0 self,
                location: &'l1 object_store::path::Path,
                options: object_store::GetOptions,
            ) -> $crate::test_support::BoxFut<'at, object_store::GetResult>
            where
                'l0: 'at,
                'l1: 'at,
                Self: 'at,
            {
                Box::pin(self.do_get(location, options))
            }

            fn delete_stream(
                &self,
                locations: futures::stream::BoxStream<
                    'static,
                    object_store::Result<object_store::path::Path>,
                >,
            ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::path::Path>>
            {
                self.inner.delete_stream(locations)
            }

            fn list(
                &self,
                prefix: Option<&object_store::path::Path>,
            ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>>
            {
                self.inner.list(prefix)
            }

            fn list_with_delimiter<'l0, 'l1, 'at>(
                &'l0 self,
                prefix: Option<&'l1 object_store::path::Path>,
            ) -> $crate::test_support::BoxFut<'at, object_store::ListResult>
            where
                'l0: 'at,
                'l1: 'at,
                Self: 'at,
            {
                self.inner.list_with_delimiter(prefix)
            }

            fn copy_opts<'l0, 'l1, 'l2, 'at>(
                &'l0 self,
                from: &'l1 object_store::path::Path,
                to: &'l2 object_store::path::Path,
                options: object_store::CopyOptions,
            ) -> $crate::test_support::BoxFut<'at, ()>
            where
                'l0: 'at,
                'l1: 'at,
                'l2: 'at,
                Self: 'at,
            {
                self.inner.copy_opts(from, to, options)
            }
        }
    };
}

pub(crate) use delegating_object_store;
