//! Leases on a PostgreSQL store shared by several replicas (`store::pg::lease`): two stores
//! opened on one schema are two replicas with two owner ids. They claim disjoint contacts, and
//! a replica whose lease expired or was taken over writes nothing that could send a request.

use std::collections::HashSet;

use ccc_dialer::contact::Status;
use ccc_dialer::store::{Store, StoreError};

use super::{campaign_with, outcome, row, DEADLINE};
use crate::pg::{PgSchema, ADMIN_URL};

async fn admin() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(ADMIN_URL, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

async fn replica(schema: &PgSchema) -> Store {
    Store::connect_postgres(&schema.url).await.unwrap()
}

async fn attempts_of(schema: &PgSchema, contact: i64) -> i64 {
    admin()
        .await
        .query_one(
            &format!(
                "SELECT COUNT(*) FROM {}.attempts WHERE contact_id = $1",
                schema.name
            ),
            &[&contact],
        )
        .await
        .unwrap()
        .get(0)
}

/// What a replica frozen past its leases (SIGSTOP, a long pause, cut off from the database)
/// looks like from the database: every lease expired.
async fn expire_every_lease(schema: &PgSchema) {
    admin()
        .await
        .batch_execute(&format!(
            "UPDATE {}.contacts SET lease_until = 0 WHERE lease_owner IS NOT NULL",
            schema.name
        ))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_replicas_claim_disjoint_contacts() {
    tokio::time::timeout(DEADLINE, async {
        let schema = PgSchema::create().await;
        let a = replica(&schema).await;
        let b = replica(&schema).await;
        assert_ne!(a.lease_owner(), b.lease_owner(), "one owner id per replica");
        let rows = (0..40).map(|i| row(i + 2, &format!("c{i}"))).collect();
        let id = campaign_with(&a, "t", rows).await;
        // Both claim at once: SKIP LOCKED hands each row to one of them.
        let (got_a, got_b) = tokio::join!(
            a.due_contacts(id, 1, 25, HashSet::new()),
            b.due_contacts(id, 1, 25, HashSet::new())
        );
        let (got_a, got_b) = (got_a.unwrap(), got_b.unwrap());
        let ids_a: HashSet<i64> = got_a.iter().map(|d| d.id).collect();
        let ids_b: HashSet<i64> = got_b.iter().map(|d| d.id).collect();
        assert!(ids_a.is_disjoint(&ids_b), "a contact was claimed twice");
        assert_eq!(ids_a.len() + ids_b.len(), 40, "every contact claimed once");
        // Each holds its own: nothing is left for either, and the other's claims are refused.
        assert!(a
            .due_contacts(id, 2, 100, ids_a.clone())
            .await
            .unwrap()
            .is_empty());
        let theirs = *ids_b.iter().next().unwrap();
        assert!(matches!(
            a.begin_attempt(theirs, 3, None).await,
            Err(StoreError::LeaseLost(c)) if c == theirs
        ));
        assert_eq!(attempts_of(&schema, theirs).await, 0);
        // A third replica finds nothing free: it waits for the others' leases, not done.
        let c = replica(&schema).await;
        assert!(c
            .due_contacts(id, 2, 100, HashSet::new())
            .await
            .unwrap()
            .is_empty());
        let (_, gate) = c.next_wait(id).await.unwrap().expect("not finished");
        assert_eq!(gate.as_deref(), Some("other_replicas"));
        // A replica that stops lets its claims go: the other takes them at once.
        assert_eq!(b.release_claims(id).await.unwrap(), ids_b.len() as u64);
        let taken: HashSet<i64> = a
            .due_contacts(id, 4, 100, ids_a.clone())
            .await
            .unwrap()
            .iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(taken, ids_b);
    })
    .await
    .expect("within the deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_replica_whose_lease_expired_writes_nothing_for_its_contacts() {
    tokio::time::timeout(DEADLINE, async {
        let schema = PgSchema::create().await;
        let a = replica(&schema).await;
        let b = replica(&schema).await;
        let id = campaign_with(&a, "t", vec![row(2, "x"), row(3, "y"), row(4, "z")]).await;
        let claimed = a.due_contacts(id, 1, 10, HashSet::new()).await.unwrap();
        let [x, y, z] = [claimed[0].id, claimed[1].id, claimed[2].id];
        assert!(a.lease_live(x));
        // y and z are in flight at A (their requests left) when A freezes past its leases.
        assert_eq!(a.begin_attempt(y, 10, None).await.unwrap(), 1);
        assert_eq!(a.begin_attempt(z, 10, None).await.unwrap(), 1);
        expire_every_lease(&schema).await;

        // B recovers A's calls in flight (in doubt, never redialled) and takes x.
        let taken = b.due_contacts(id, 20, 10, HashSet::new()).await.unwrap();
        assert_eq!(taken.iter().map(|d| d.id).collect::<Vec<_>>(), vec![x]);
        for c in [y, z] {
            let r = b.result_of(c).await.unwrap();
            assert_eq!(
                (r.status.as_str(), r.error_code.as_str()),
                ("unknown", "InDoubt")
            );
        }

        // A wakes: nothing it writes for x changes anything, and it may not send for it.
        assert!(matches!(
            a.begin_attempt(x, 30, None).await,
            Err(StoreError::LeaseLost(c)) if c == x
        ));
        assert!(!a.lease_live(x), "A still believes it may send for x");
        assert_eq!(attempts_of(&schema, x).await, 0, "A wrote an attempt for x");
        a.defer(x, 99_999, "min_gap", 31).await.unwrap();
        assert!(!a.release_unsent(x, 32).await.unwrap());
        // B's claim stands: it writes its attempt down.
        assert_eq!(b.begin_attempt(x, 40, None).await.unwrap(), 1);
        assert_eq!(attempts_of(&schema, x).await, 1);

        // A's late replies: recorded on their attempts; a final one settles the doubt, one that
        // would put the contact back in the queue (a new send) does not.
        let placed = ccc_dialer::store::AttemptOutcome {
            session_id: Some("s-y".into()),
            ..outcome(Status::Placed, "placed", Some(10))
        };
        assert!(matches!(
            a.finish_attempt(y, 1, placed).await,
            Err(StoreError::LeaseLost(_))
        ));
        assert_eq!(b.result_of(y).await.unwrap().status, "placed");
        let retry = ccc_dialer::store::AttemptOutcome {
            next_at: 50,
            error_code: Some("InternalError".into()),
            ..outcome(Status::Pending, "error", Some(10))
        };
        assert!(matches!(
            a.finish_attempt(z, 1, retry).await,
            Err(StoreError::LeaseLost(_))
        ));
        assert_eq!(b.result_of(z).await.unwrap().status, "unknown");
        assert!(
            b.due_contacts(id, 1_000, 10, HashSet::from([x]))
                .await
                .unwrap()
                .is_empty(),
            "a contact in doubt came back to the queue"
        );
        let in_flight = b.counts(id).await.unwrap().get(&Status::InFlight).copied();
        assert_eq!(in_flight, Some(1), "only B's attempt for x is in flight");
    })
    .await
    .expect("within the deadline");
}

/// A replica's lease runs out while its reply is being written: its finishing transaction has
/// locked the attempt and goes on to the contact. Another replica recovering expired calls
/// meanwhile must neither wait for that attempt while holding the contact (the two would
/// deadlock, and PostgreSQL would abort one: a `run` exited on "deadlock detected") nor mark
/// the contact in doubt: the reply settles it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_recovery_leaves_a_call_whose_reply_is_being_written_to_that_reply() {
    tokio::time::timeout(DEADLINE, async {
        let schema = PgSchema::create().await;
        let a = replica(&schema).await;
        let b = replica(&schema).await;
        let id = campaign_with(&a, "t", vec![row(2, "x")]).await;
        let claimed = a.due_contacts(id, 1, 10, HashSet::new()).await.unwrap();
        let x = claimed[0].id;
        assert_eq!(a.begin_attempt(x, 10, None).await.unwrap(), 1);
        expire_every_lease(&schema).await;
        // A's reply is being written: the attempt first (as `finish_attempt` does).
        let mut writer = admin().await;
        let tx = writer.transaction().await.unwrap();
        tx.execute(
            &format!(
                "UPDATE {}.attempts SET outcome = 'placed', finished_at = 20 WHERE contact_id = $1",
                schema.name
            ),
            &[&x],
        )
        .await
        .unwrap();
        // B looks for work, recovering expired calls first: it must come back (not wait on
        // A's attempt) and leave x alone.
        assert!(b
            .due_contacts(id, 30, 10, HashSet::new())
            .await
            .unwrap()
            .is_empty());
        // A goes on to the contact and commits: no deadlock.
        tx.execute(
            &format!(
                "UPDATE {}.contacts SET status = 'placed', lease_owner = NULL, lease_until = NULL
                 WHERE id = $1",
                schema.name
            ),
            &[&x],
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let status: String = admin()
            .await
            .query_one(
                &format!("SELECT status FROM {}.contacts WHERE id = $1", schema.name),
                &[&x],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(status, "placed", "the reply settled it, not the recovery");
    })
    .await
    .expect("within the deadline: recovery waited on an attempt whose reply was being written");
}
