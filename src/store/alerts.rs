//! Alert groups and alerts (migration 0010): a webhook's whole batch is
//! stored in one transaction, a few multi-row statements whatever its size,
//! before the sender gets its 2xx.

use super::{int, opt_text, params, text, Backend, Conn, Result, Store, Tx};
use crate::clock::Millis;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// What an alert record says, going in and coming out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRecord {
    pub format: String,
    pub scope: String,
    pub fingerprint: String,
    /// `firing`, `acknowledged` or `resolved`.
    pub status: String,
    pub title: Option<String>,
    /// JSON objects.
    pub labels: String,
    pub annotations: String,
    pub level: Option<String>,
    pub rank: Option<i64>,
    pub opens_incident: bool,
    pub starts_at: Option<Millis>,
    pub ends_at: Option<Millis>,
    pub generator_url: Option<String>,
    pub silence_url: Option<String>,
    pub dashboard_url: Option<String>,
    pub panel_url: Option<String>,
    pub image_url: Option<String>,
    /// As messages show it (`alerts::name_of`): its `alertname` label, else
    /// its title, else its key.
    pub name: String,
    /// As messages show it (`alerts::severity_of`): its route's level, else
    /// its `severity` label.
    pub severity: Option<String>,
}

/// One alert in one route group, as routing placed it (the store's input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAlert {
    pub route: String,
    pub group_key: String,
    pub profile: Option<String>,
    /// `<platform>:<channel>,…`: where the group's message will go.
    pub destinations: String,
    pub record: AlertRecord,
}

/// A stored alert with its group's route and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAlert {
    pub id: i64,
    pub group_id: i64,
    pub route: String,
    pub group_key: String,
    pub record: AlertRecord,
    /// When its status last changed (or it was opened).
    pub changed_at: Millis,
    pub last_seen_at: Millis,
}

#[cfg(test)]
impl StoredAlert {
    /// A firing Alertmanager alert (fingerprint = id) with `labels` (JSON),
    /// route `chat`, no level and no links: the base of the pure modules' tests.
    pub(crate) fn example(id: i64, group_id: i64, labels: String) -> StoredAlert {
        let parsed: crate::alerts::Labels = serde_json::from_str(&labels).unwrap_or_default();
        StoredAlert {
            id,
            group_id,
            route: "chat".into(),
            group_key: "{}".into(),
            record: AlertRecord {
                format: "alertmanager".into(),
                scope: "alertmanager".into(),
                fingerprint: id.to_string(),
                status: "firing".into(),
                title: None,
                labels,
                annotations: "{}".into(),
                level: None,
                rank: None,
                opens_incident: false,
                starts_at: None,
                ends_at: None,
                generator_url: None,
                silence_url: None,
                dashboard_url: None,
                panel_url: None,
                image_url: None,
                name: crate::alerts::name_of(&parsed, None, &id.to_string()),
                severity: crate::alerts::severity_of(None, &parsed),
            },
            changed_at: 0,
            last_seen_at: 0,
        }
    }
}

/// A stored alert group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertGroup {
    pub id: i64,
    pub route: String,
    pub group_key: String,
    pub profile: Option<String>,
    pub destinations: String,
    /// `firing` while any member is open, else `resolved`.
    pub state: String,
    /// The group's chat message (a later slice posts it).
    pub msg_key: Option<String>,
    pub updated_at: Millis,
    /// The `updated_at` its chat message last showed (0: never posted).
    pub posted_at: Millis,
    /// The incident it opened last, if any (a new one replaces a resolved one).
    pub incident_id: Option<i64>,
}

/// Rows per multi-row statement: far below both backends' parameter limits.
const CHUNK: usize = 400;

/// The columns an alert row is inserted with, in bind order (see `bind_alert`).
const ALERT_COLUMNS: &str = "group_id, format, scope, fingerprint, status, title, labels, annotations, \
     level, level_rank, opens_incident, starts_at, ends_at, generator_url, silence_url, dashboard_url, \
     panel_url, image_url, name, severity, created_at, changed_at, last_seen_at";
const ALERT_PARAMS: usize = 23;

/// What a repeat of an open alert refreshes; its status stays (an
/// acknowledged alert firing again is still acknowledged, as in PagerDuty).
const REFRESH: &str = "labels = excluded.labels, annotations = excluded.annotations, \
     title = COALESCE(excluded.title, alerts.title), level = excluded.level, \
     level_rank = excluded.level_rank, opens_incident = excluded.opens_incident, \
     starts_at = COALESCE(alerts.starts_at, excluded.starts_at), \
     generator_url = COALESCE(excluded.generator_url, alerts.generator_url), \
     silence_url = COALESCE(excluded.silence_url, alerts.silence_url), \
     dashboard_url = COALESCE(excluded.dashboard_url, alerts.dashboard_url), \
     panel_url = COALESCE(excluded.panel_url, alerts.panel_url), \
     image_url = COALESCE(excluded.image_url, alerts.image_url), \
     name = excluded.name, severity = excluded.severity, last_seen_at = excluded.last_seen_at";

super::on_tx! {
    /// Stores a webhook's batch in its own transaction (see [`Tx::ingest_alerts`]).
    fn ingest_alerts(batch: &[NewAlert], now: Millis) -> usize;
}

/// The statements of an alert batch, on a connection inside its
/// transaction: a step's [`Tx`], or a writer's kept [`Conn`].
struct Ingest<'a> {
    conn: &'a mut AnyConnection,
    backend: Backend,
}

impl Ingest<'_> {
    fn conn(&mut self) -> &mut AnyConnection {
        self.conn
    }

    fn backend(&self) -> Backend {
        self.backend
    }
}

impl Tx {
    /// Stores `batch` (see [`Ingest::ingest_alerts`]).
    pub async fn ingest_alerts(&mut self, batch: &[NewAlert], now: Millis) -> Result<usize> {
        let backend = self.backend();
        Ingest {
            conn: self.conn(),
            backend,
        }
        .ingest_alerts(batch, now)
        .await
    }

    /// Marks groups changed (see [`Ingest::bump_groups`]).
    pub(super) async fn bump_groups(&mut self, ids: &[i64], now: Millis, also: &str) -> Result<()> {
        let backend = self.backend();
        Ingest {
            conn: self.conn(),
            backend,
        }
        .bump_groups(ids, now, also)
        .await
    }
}

impl Conn {
    /// [`Tx::ingest_alerts`] in a transaction of its own on this kept
    /// connection (committed here; the connection stays kept).
    pub async fn ingest_alerts(&mut self, batch: &[NewAlert], now: Millis) -> Result<usize> {
        use sqlx::Acquire;
        let backend = self.store.backend;
        let mut tx = self.conn.begin().await?;
        let n = Ingest {
            conn: &mut tx,
            backend,
        }
        .ingest_alerts(batch, now)
        .await?;
        tx.commit().await?;
        Ok(n)
    }
}

impl Ingest<'_> {
    /// Stores `batch`: each group is created or touched; a firing alert
    /// opens a record in its group or refreshes the open one; acknowledge
    /// and resolve move the key's open records (whatever group they are in),
    /// and are recorded on their own only when the key was never seen.
    /// Within the batch the last entry of a key wins. Answers the number of
    /// groups touched.
    async fn ingest_alerts(&mut self, batch: &[NewAlert], now: Millis) -> Result<usize> {
        let batch = last_per_key(batch);
        if batch.is_empty() {
            return Ok(0);
        }
        let ids = self.upsert_groups(&batch, now).await?;
        let group = |a: &NewAlert| ids[&(a.route.clone(), a.group_key.clone())];
        let (firing, moves): (Vec<&NewAlert>, Vec<&NewAlert>) =
            batch.iter().copied().partition(|a| a.record.status == "firing");
        // A group with a firing alert in the batch is firing after it
        // (`upsert_groups` says so); only the groups an acknowledge or a
        // resolve reached are counted again (a batch of triggers, none).
        let mut touched: BTreeSet<i64> = moves.iter().map(|a| group(a)).collect();
        touched.extend(self.move_open(&moves, now).await?);
        self.insert_unseen(&moves, &group, now).await?;
        self.upsert_firing(&firing, &group, now).await?;
        self.recount_groups(&touched.into_iter().collect::<Vec<_>>(), now)
            .await?;
        Ok(ids.len())
    }

    /// Creates or touches each group of `batch`; their ids by (route, key).
    /// A group with a firing alert in the batch is made firing; the others
    /// keep their state (a new one starts resolved) until `recount_groups`
    /// counts their members.
    async fn upsert_groups(
        &mut self,
        batch: &[&NewAlert],
        now: Millis,
    ) -> Result<HashMap<(String, String), i64>> {
        // Each group's alert that decides its state: a firing one if any.
        let mut groups: BTreeMap<(&str, &str), &NewAlert> = BTreeMap::new();
        for a in batch {
            let e = groups.entry((&a.route, &a.group_key)).or_insert(a);
            if a.record.status == "firing" {
                *e = a;
            }
        }
        let groups: Vec<&NewAlert> = groups.into_values().collect();
        let backend = self.backend();
        let mut ids = HashMap::new();
        for chunk in groups.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO alert_groups (route, group_key, profile, destinations, state, created_at, updated_at)
                 VALUES {}
                 ON CONFLICT (route, group_key) DO UPDATE SET profile = excluded.profile,
                   destinations = excluded.destinations,
                   state = CASE WHEN excluded.state = 'firing' THEN 'firing' ELSE alert_groups.state END,
                   updated_at = CASE WHEN alert_groups.updated_at >= excluded.updated_at
                     THEN alert_groups.updated_at + 1 ELSE excluded.updated_at END
                 RETURNING id, route, group_key",
                rows(backend, 1, chunk.len(), 7)
            );
            let mut q = sqlx::query(&sql);
            for g in chunk {
                let state = if g.record.status == "firing" {
                    "firing"
                } else {
                    "resolved"
                };
                q = q
                    .bind(&g.route)
                    .bind(&g.group_key)
                    .bind(&g.profile)
                    .bind(&g.destinations)
                    .bind(state)
                    .bind(now)
                    .bind(now);
            }
            for r in q.fetch_all(self.conn()).await? {
                ids.insert((text(&r, "route")?, text(&r, "group_key")?), int(&r, "id")?);
            }
        }
        Ok(ids)
    }

    /// Acknowledges or resolves the open records of each key of `moves`;
    /// answers the groups whose records moved.
    async fn move_open(&mut self, moves: &[&NewAlert], now: Millis) -> Result<Vec<i64>> {
        let mut keys: BTreeMap<(&str, &str), &NewAlert> = BTreeMap::new();
        for a in moves {
            keys.insert((&a.record.scope, &a.record.fingerprint), a);
        }
        let keys: Vec<&NewAlert> = keys.into_values().collect();
        let backend = self.backend();
        let mut groups = Vec::new();
        for chunk in keys.chunks(CHUNK) {
            // VALUES columns are column1… on both backends.
            // `now` bound, not spelled into the text (see `bump_groups`).
            let at = params(backend, 1, 2);
            let sql = format!(
                "UPDATE alerts SET status = v.column3, ends_at = COALESCE(v.column4, alerts.ends_at),
                   changed_at = {}, last_seen_at = {}
                 FROM (VALUES {}) AS v
                 WHERE alerts.scope = v.column1 AND alerts.fingerprint = v.column2
                   AND alerts.status <> 'resolved' AND alerts.status <> v.column3
                 RETURNING alerts.group_id",
                at[0],
                at[1],
                rows(backend, 3, chunk.len(), 4)
            );
            let mut q = sqlx::query(&sql).bind(now).bind(now);
            for a in chunk {
                let r = &a.record;
                q = q
                    .bind(&r.scope)
                    .bind(&r.fingerprint)
                    .bind(&r.status)
                    .bind(r.ends_at);
            }
            for r in q.fetch_all(self.conn()).await? {
                groups.push(int(&r, "group_id")?);
            }
        }
        Ok(groups)
    }

    /// Records the acknowledges and resolves of keys never seen before (an
    /// Alertmanager restart's resolved notices, say), so nothing that
    /// arrived is lost; a key with any record is left as `move_open` left it.
    async fn insert_unseen(
        &mut self,
        moves: &[&NewAlert],
        group: &impl Fn(&NewAlert) -> i64,
        now: Millis,
    ) -> Result<()> {
        self.insert_alerts(moves, group, now, |values| {
            format!(
                "INSERT INTO alerts ({ALERT_COLUMNS})
                 SELECT * FROM (VALUES {values}) AS v
                 WHERE NOT EXISTS (SELECT 1 FROM alerts a WHERE a.scope = v.column3 AND a.fingerprint = v.column4)"
            )
        })
        .await
    }

    /// Opens a record for each firing alert, or refreshes its open one.
    async fn upsert_firing(
        &mut self,
        firing: &[&NewAlert],
        group: &impl Fn(&NewAlert) -> i64,
        now: Millis,
    ) -> Result<()> {
        self.insert_alerts(firing, group, now, |values| {
            format!(
                "INSERT INTO alerts ({ALERT_COLUMNS}) VALUES {values}
                 ON CONFLICT (group_id, scope, fingerprint) WHERE status <> 'resolved'
                 DO UPDATE SET {REFRESH}"
            )
        })
        .await
    }

    /// Runs `statement(values)` over `alerts`, a chunk of rows at a time.
    async fn insert_alerts(
        &mut self,
        alerts: &[&NewAlert],
        group: &impl Fn(&NewAlert) -> i64,
        now: Millis,
        statement: impl Fn(&str) -> String,
    ) -> Result<()> {
        let backend = self.backend();
        for chunk in alerts.chunks(CHUNK) {
            let sql = statement(&rows(backend, 1, chunk.len(), ALERT_PARAMS));
            let mut q = sqlx::query(&sql);
            for a in chunk {
                q = bind_alert(q, a, group(a), now);
            }
            q.execute(self.conn()).await?;
        }
        Ok(())
    }

    /// Sets each group's state from its members.
    async fn recount_groups(&mut self, ids: &[i64], now: Millis) -> Result<()> {
        self.bump_groups(
            ids,
            now,
            ", state = CASE WHEN EXISTS
               (SELECT 1 FROM alerts a WHERE a.group_id = alert_groups.id AND a.status <> 'resolved')
               THEN 'firing' ELSE 'resolved' END",
        )
        .await
    }

    /// Marks groups changed at `now`, setting `also` (more `, col = …`
    /// assignments) with it. `updated_at` only grows, also within one
    /// millisecond: the poster renders every version whose updated_at it
    /// has not shown.
    async fn bump_groups(&mut self, ids: &[i64], now: Millis, also: &str) -> Result<()> {
        let backend = self.backend();
        for chunk in ids.chunks(CHUNK) {
            // `now` bound, not spelled into the text: one statement text per
            // chunk size, so the prepared statement is reused.
            let at = params(backend, 1, 2);
            let sql = format!(
                "UPDATE alert_groups SET updated_at = CASE WHEN updated_at >= {} THEN updated_at + 1 ELSE {} END{also}
                 WHERE id IN ({})",
                at[0],
                at[1],
                params(backend, 3, chunk.len()).join(", ")
            );
            let mut q = sqlx::query(&sql).bind(now).bind(now);
            for id in chunk {
                q = q.bind(*id);
            }
            q.execute(self.conn()).await?;
        }
        Ok(())
    }
}

/// `(…), (…)`: `n` rows of `width` placeholders from `first`.
fn rows(backend: Backend, first: usize, n: usize, width: usize) -> String {
    (0..n)
        .map(|i| format!("({})", params(backend, first + i * width, width).join(", ")))
        .collect::<Vec<_>>()
        .join(", ")
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

fn bind_alert<'q>(q: Query<'q>, a: &'q NewAlert, group_id: i64, now: Millis) -> Query<'q> {
    let r = &a.record;
    q.bind(group_id)
        .bind(&r.format)
        .bind(&r.scope)
        .bind(&r.fingerprint)
        .bind(&r.status)
        .bind(&r.title)
        .bind(&r.labels)
        .bind(&r.annotations)
        .bind(&r.level)
        .bind(r.rank)
        .bind(i64::from(r.opens_incident))
        .bind(r.starts_at)
        .bind(r.ends_at)
        .bind(&r.generator_url)
        .bind(&r.silence_url)
        .bind(&r.dashboard_url)
        .bind(&r.panel_url)
        .bind(&r.image_url)
        .bind(&r.name)
        .bind(&r.severity)
        .bind(now)
        .bind(now)
        .bind(now)
}

/// The batch with one entry per (group, key): the last one.
fn last_per_key(batch: &[NewAlert]) -> Vec<&NewAlert> {
    let mut seen = HashMap::new();
    for (i, a) in batch.iter().enumerate() {
        seen.insert(
            (&a.route, &a.group_key, &a.record.scope, &a.record.fingerprint),
            i,
        );
    }
    let mut keep: Vec<usize> = seen.into_values().collect();
    keep.sort_unstable();
    keep.into_iter().map(|i| &batch[i]).collect()
}

impl Store {
    /// Every stored alert, oldest first (tests, and `/alerts` later).
    pub async fn alerts(&self) -> Result<Vec<StoredAlert>> {
        let rows = sqlx::query(
            "SELECT a.*, g.route, g.group_key FROM alerts a JOIN alert_groups g ON g.id = a.group_id
             ORDER BY a.id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(stored_alert).collect()
    }

    /// How many alert records are stored.
    pub async fn alerts_count(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM alerts")
            .fetch_one(&self.pool)
            .await?;
        int(&row, "n")
    }

    /// Every alert group, oldest first.
    pub async fn alert_groups(&self) -> Result<Vec<AlertGroup>> {
        let rows = sqlx::query(&format!("SELECT {GROUP_COLUMNS} FROM alert_groups ORDER BY id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(alert_group).collect()
    }

    /// Groups whose members changed since their message was last rendered,
    /// the longest waiting first.
    pub async fn unposted_alert_groups(&self, limit: i64) -> Result<Vec<AlertGroup>> {
        let rows = sqlx::query(&format!(
            "SELECT {GROUP_COLUMNS} FROM alert_groups WHERE updated_at > posted_at ORDER BY updated_at LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(alert_group).collect()
    }

    /// A group's members for its message: the open ones and the resolved
    /// ones still shown (newest change first, at most `limit`), and the
    /// counts of firing and resolved records.
    pub async fn group_members(&self, group: i64, limit: i64) -> Result<(Vec<StoredAlert>, i64, i64)> {
        // Per status, its newest `limit` through alerts_group (one sort of
        // the whole group would cost a storm's every render O(group)).
        let newest = |status: &str| {
            format!(
                "SELECT * FROM (SELECT a.*, g.route, g.group_key FROM alerts a JOIN alert_groups g ON g.id = a.group_id
                 WHERE a.group_id = $1 AND a.status = '{status}' ORDER BY a.changed_at DESC, a.id DESC LIMIT $2) AS {status}"
            )
        };
        let sql = ["firing", "acknowledged", "resolved"]
            .map(newest)
            .join(" UNION ALL ");
        // One reader connection for both reads, beside the writer.
        let mut reader = self.reads.acquire().await?;
        let rows = sqlx::query(&sql)
            .bind(group)
            .bind(limit)
            .fetch_all(&mut *reader)
            .await?;
        let mut shown = rows.iter().map(stored_alert).collect::<Result<Vec<_>>>()?;
        shown.sort_by_key(|a| {
            (
                a.record.status == "resolved",
                std::cmp::Reverse((a.changed_at, a.id)),
            )
        });
        shown.truncate(usize::try_from(limit).unwrap_or(0));
        let counts =
            sqlx::query("SELECT status, COUNT(*) AS n FROM alerts WHERE group_id = $1 GROUP BY status")
                .bind(group)
                .fetch_all(&mut *reader)
                .await?;
        let (mut open, mut closed) = (0, 0);
        for r in &counts {
            match text(r, "status")?.as_str() {
                "resolved" => closed += int(r, "n")?,
                _ => open += int(r, "n")?,
            }
        }
        Ok((shown, open, closed))
    }
}

impl Tx {
    /// Links `group` to the incident it opened, in place of `previous`
    /// (none, or its resolved incident); false when the link changed
    /// meanwhile (another instance opened one first).
    pub async fn link_group_incident(
        &mut self,
        group: i64,
        previous: Option<i64>,
        incident: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE alert_groups SET incident_id = $2 WHERE id = $1 AND COALESCE(incident_id, 0) = $3",
        )
        .bind(group)
        .bind(incident)
        .bind(previous.unwrap_or(0))
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records that the group's message now shows its state as of
    /// `updated_at`; false if that was recorded already (another sender).
    pub async fn mark_group_posted(&mut self, id: i64, updated_at: Millis) -> Result<bool> {
        let done = sqlx::query("UPDATE alert_groups SET posted_at = $2 WHERE id = $1 AND posted_at < $2")
            .bind(id)
            .bind(updated_at)
            .execute(self.conn())
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

const GROUP_COLUMNS: &str =
    "id, route, group_key, profile, destinations, state, msg_key, updated_at, posted_at, incident_id";

fn alert_group(r: &AnyRow) -> Result<AlertGroup> {
    Ok(AlertGroup {
        id: int(r, "id")?,
        route: text(r, "route")?,
        group_key: text(r, "group_key")?,
        profile: opt_text(r, "profile")?,
        destinations: text(r, "destinations")?,
        state: text(r, "state")?,
        msg_key: opt_text(r, "msg_key")?,
        updated_at: int(r, "updated_at")?,
        posted_at: int(r, "posted_at")?,
        incident_id: opt_int(r, "incident_id")?,
    })
}

pub(super) fn opt_int(row: &AnyRow, col: &str) -> Result<Option<i64>> {
    Ok(row.try_get::<Option<i64>, _>(col)?)
}

pub(super) fn stored_alert(r: &AnyRow) -> Result<StoredAlert> {
    Ok(StoredAlert {
        id: int(r, "id")?,
        group_id: int(r, "group_id")?,
        route: text(r, "route")?,
        group_key: text(r, "group_key")?,
        record: AlertRecord {
            format: text(r, "format")?,
            scope: text(r, "scope")?,
            fingerprint: text(r, "fingerprint")?,
            status: text(r, "status")?,
            title: opt_text(r, "title")?,
            labels: text(r, "labels")?,
            annotations: text(r, "annotations")?,
            level: opt_text(r, "level")?,
            rank: opt_int(r, "level_rank")?,
            opens_incident: int(r, "opens_incident")? != 0,
            starts_at: opt_int(r, "starts_at")?,
            ends_at: opt_int(r, "ends_at")?,
            generator_url: opt_text(r, "generator_url")?,
            silence_url: opt_text(r, "silence_url")?,
            dashboard_url: opt_text(r, "dashboard_url")?,
            panel_url: opt_text(r, "panel_url")?,
            image_url: opt_text(r, "image_url")?,
            name: text(r, "name")?,
            severity: opt_text(r, "severity")?,
        },
        changed_at: int(r, "changed_at")?,
        last_seen_at: int(r, "last_seen_at")?,
    })
}
