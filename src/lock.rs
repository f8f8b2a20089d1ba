//! The one policy for a poisoned lock: use the data anyway.
//!
//! A mutex is poisoned when a thread panicked while holding it. Every critical
//! section in authrelay is a single insert, remove, lookup or assignment on a
//! map or a set, which a panic cannot leave half done, so the data behind a
//! poisoned lock is still consistent. Refusing it would turn one bug into a
//! worker that fails every later job; using it keeps the worker serving (the
//! panic itself is caught and reported where it happened).

use std::sync::{Mutex, MutexGuard, PoisonError};

pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    #[test]
    fn a_poisoned_lock_still_gives_its_data() {
        let shared = Arc::new(Mutex::new(vec![1]));
        let poisoner = Arc::clone(&shared);
        let _ = std::thread::spawn(move || {
            let _guard = poisoner.lock().unwrap();
            panic!("a bug while holding the lock");
        })
        .join();
        assert!(shared.is_poisoned());
        super::lock(&shared).push(2);
        assert_eq!(*super::lock(&shared), vec![1, 2]);
    }
}
