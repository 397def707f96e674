//! The report kinds this phone knows: the built-in ones, then those the store keeps from the
//! server's catalogue, with retired versions marked. The client holds them as one registry,
//! swapped whole when the stored kinds change.

use std::sync::Arc;

use gridsync_core::schema::{Registry, Schema};

use super::Client;
use crate::store::{SchemaState, StoredSchema};

impl Client {
    /// The registry as it is now; a refresh swaps in another, so hold this one for a whole read.
    pub(super) fn registry(&self) -> Arc<Registry> {
        Arc::clone(
            &self
                .registry
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    pub(super) fn set_registry(&self, registry: Registry) {
        *self
            .registry
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(registry);
    }
}

/// The kinds the client reads: the built-in ones, then the stored definitions, then the
/// retired versions marked (built-in ones too). A stored definition this app cannot read (one
/// written for a newer app, say) is left out with its reason logged, never a failure: its
/// reports open without a form, and an app that can read it will.
pub(super) fn registry_of(stored: &[StoredSchema]) -> Registry {
    let mut registry = Registry::builtin();
    for row in stored {
        let Some(json) = &row.definition else {
            continue;
        };
        let added = Schema::from_json(json).and_then(|schema| {
            if schema.kind == row.kind && schema.version == row.version {
                registry.add_json(json).map(|()| None)
            } else {
                Ok(Some(format!(
                    "it defines {} version {}",
                    schema.kind, schema.version
                )))
            }
        });
        let skipped = match added {
            Ok(None) => continue,
            Ok(Some(mismatch)) => mismatch,
            Err(e) => e.to_string(),
        };
        tracing::warn!(
            kind = %row.kind,
            version = row.version,
            reason = %skipped,
            "a stored report kind definition is skipped"
        );
    }
    for row in stored.iter().filter(|r| r.state == SchemaState::Retired) {
        registry.retire(&row.kind, row.version);
    }
    registry
}
