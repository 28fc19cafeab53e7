//! The rule that keeps a PostgreSQL pool from deadlocking: a task that holds
//! a transaction ([`crate::Work`]) never waits for a second pool connection.
//! With N such tasks and a pool of N, each would wait for a connection that
//! only another of them can give back. Reads inside a transaction go through
//! it.
//!
//! Debug builds (every test) check the rule: `Work` registers its task while
//! it lives, and every use of the pools asserts that the current task holds
//! no transaction, so a path that breaks the rule panics in the first test
//! that takes it, on either backend. Release builds check nothing.

#[cfg(debug_assertions)]
mod imp {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};

    fn holders() -> &'static Mutex<HashMap<tokio::task::Id, usize>> {
        static HOLDERS: OnceLock<Mutex<HashMap<tokio::task::Id, usize>>> = OnceLock::new();
        HOLDERS.get_or_init(Default::default)
    }

    /// Registers the current task as holding a transaction while it lives.
    #[derive(Debug)]
    pub(crate) struct Held(Option<tokio::task::Id>);

    impl Held {
        pub(crate) fn enter() -> Held {
            let id = tokio::task::try_id();
            if let Some(id) = id {
                *holders().lock().unwrap_or_else(|e| e.into_inner()).entry(id).or_insert(0) += 1;
            }
            Held(id)
        }
    }

    impl Drop for Held {
        fn drop(&mut self) {
            let Some(id) = self.0 else { return };
            let mut map = holders().lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = map.get_mut(&id) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&id);
                }
            }
        }
    }

    /// Panics if the current task holds a transaction.
    #[track_caller]
    pub(crate) fn assert_free(pool: &str) {
        let Some(id) = tokio::task::try_id() else { return };
        let held = holders().lock().unwrap_or_else(|e| e.into_inner()).contains_key(&id);
        assert!(
            !held,
            "a task holding a transaction asked the {pool} pool for another connection \
             (a pool deadlock under load): read through the transaction instead"
        );
    }
}

#[cfg(not(debug_assertions))]
mod imp {
    #[derive(Debug)]
    pub(crate) struct Held;

    impl Held {
        pub(crate) fn enter() -> Held {
            Held
        }
    }

    #[inline(always)]
    pub(crate) fn assert_free(_pool: &str) {}
}

pub(crate) use imp::{assert_free, Held};
