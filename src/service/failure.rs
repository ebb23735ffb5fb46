//! Which store failure lies under a use case's error, however deeply wrapped.
//!
//! A use-case error wraps a [`StoreError`] directly (`Store`) or through the
//! pipeline, an apply or another use case's error. [`StoreCause`] finds it,
//! so a front end answers the store's failure as what it is (the database
//! unavailable is a 503, not the server's own failure) whatever the path.

use crate::backend::store::StoreError;
use crate::service::apply::ApplyError;
use crate::service::gitplan::GitPlanError;
use crate::service::live_sync::LiveSyncError;
use crate::service::pipeline::PipelineError;
use crate::service::promote::PromoteError;
use crate::service::staging::StagingError;
use crate::service::tenants::TenantError;
use crate::service::vars::VarsError;
use crate::service::zip_export::ExportError;
use crate::service::zip_import::ImportError;

/// An error that may have a [`StoreError`] at its root.
pub trait StoreCause {
    /// The store's error under this one, if any.
    fn store_cause(&self) -> Option<&StoreError>;

    /// Whether the store's database could not be reached.
    fn store_unavailable(&self) -> bool {
        matches!(self.store_cause(), Some(StoreError::Unavailable { .. }))
    }
}

impl StoreCause for StoreError {
    fn store_cause(&self) -> Option<&StoreError> {
        Some(self)
    }
}

impl StoreCause for PipelineError {
    fn store_cause(&self) -> Option<&StoreError> {
        match self {
            PipelineError::Store(s) => Some(s),
            _ => None,
        }
    }
}

impl StoreCause for ApplyError {
    fn store_cause(&self) -> Option<&StoreError> {
        match self {
            ApplyError::Store(s) => Some(s),
            _ => None,
        }
    }
}

impl StoreCause for StagingError {
    fn store_cause(&self) -> Option<&StoreError> {
        match self {
            StagingError::Store(s) => Some(s),
            StagingError::Pipeline(p) => p.store_cause(),
            _ => None,
        }
    }
}

impl StoreCause for PromoteError {
    fn store_cause(&self) -> Option<&StoreError> {
        match self {
            PromoteError::Store(s) => Some(s),
            PromoteError::Pipeline(p) => p.store_cause(),
            PromoteError::Apply(a) => a.store_cause(),
            _ => None,
        }
    }
}

impl StoreCause for ImportError {
    fn store_cause(&self) -> Option<&StoreError> {
        match self {
            ImportError::Store(s) => Some(s),
            ImportError::Pipeline(p) => p.store_cause(),
            ImportError::Apply(a) => a.store_cause(),
            _ => None,
        }
    }
}

impl StoreCause for ExportError {
    fn store_cause(&self) -> Option<&StoreError> {
        match self {
            ExportError::Pipeline(p) => p.store_cause(),
            _ => None,
        }
    }
}

impl StoreCause for LiveSyncError {
    fn store_cause(&self) -> Option<&StoreError> {
        match self {
            LiveSyncError::Store(s) => Some(s),
            _ => None,
        }
    }
}

impl StoreCause for GitPlanError {
    fn store_cause(&self) -> Option<&StoreError> {
        match self {
            GitPlanError::Store(s) => Some(s),
            GitPlanError::Pipeline(p) => p.store_cause(),
            _ => None,
        }
    }
}

impl StoreCause for VarsError {
    fn store_cause(&self) -> Option<&StoreError> {
        match self {
            VarsError::Store(s) => Some(s),
            _ => None,
        }
    }
}

impl StoreCause for TenantError {
    fn store_cause(&self) -> Option<&StoreError> {
        match self {
            TenantError::Store(s) => Some(s),
            _ => None,
        }
    }
}
