//! Groups of accounts (staff, a partner's customers): named by an admin,
//! joined at registration or later; the tiers restrict levels to them.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{AccountError, Accounts, GroupView, account_exists, group_name, ts};
use crate::ledger::db::{Db, DbError, Dialect, args};

/// The most groups one page of [`Accounts::groups_page`] holds.
pub const GROUPS_PAGE_MAX: u32 = 200;

/// One page of groups, by name.
#[derive(Debug, Serialize, Deserialize)]
pub struct GroupPage {
    /// The groups, by name.
    pub groups: Vec<GroupView>,
    /// Pass as `after` for the next page; `None` on the last.
    pub next_after: Option<String>,
}

/// The groups an account belongs to, by name, sorted. Read inside the
/// caller's transaction (the tiers restrict levels to groups).
pub(crate) fn groups_of(db: &dyn Db, account: i64) -> Result<Vec<String>, DbError> {
    let mut groups: Vec<String> = db.query_map(
        "SELECT group_name FROM account_groups WHERE account_id = ?1",
        args![account],
        |r| r.get(0),
    )?;
    // Sorted here, by bytes: PostgreSQL's ORDER BY follows the cluster's
    // locale, SQLite's does not, and both stores must answer alike.
    groups.sort();
    Ok(groups)
}

/// The first group of `groups` that does not exist.
pub(super) fn missing_group(db: &dyn Db, groups: &[String]) -> Result<Option<String>, DbError> {
    for g in groups {
        let found = db.query_opt("SELECT 1 FROM groups WHERE name = ?1", args![g], |_| Ok(()))?;
        if found.is_none() {
            return Ok(Some(g.clone()));
        }
    }
    Ok(None)
}

impl Accounts {
    /// Creates a group.
    pub async fn create_group(
        &self,
        name: &str,
        description: Option<String>,
    ) -> Result<GroupView, AccountError> {
        let name = group_name(name)?;
        let stamp = ts(OffsetDateTime::now_utc());
        self.books
            .write(move |db| {
                let n = db.execute(
                    "INSERT INTO groups (name, description, created_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT(name) DO NOTHING",
                    args![name, description, stamp],
                )?;
                if n == 0 {
                    return Ok(Err(AccountError::GroupExists));
                }
                Ok(Ok(GroupView {
                    name: name.clone(),
                    description: description.clone(),
                    members: 0,
                    created_at: stamp.clone(),
                }))
            })
            .await?
    }

    /// Every group with its member count, by name.
    pub async fn list_groups(&self) -> Result<Vec<GroupView>, AccountError> {
        let mut groups = self
            .books
            .read(|db| {
                db.query_map(
                    "SELECT g.name, g.description, g.created_at,
                            (SELECT COUNT(*) FROM account_groups m WHERE m.group_name = g.name)
                     FROM groups g",
                    args![],
                    |r| {
                        Ok(GroupView {
                            name: r.get(0)?,
                            description: r.get(1)?,
                            created_at: r.get(2)?,
                            members: r.get(3)?,
                        })
                    },
                )
            })
            .await?;
        // By bytes, as groups_of sorts: the stores' collations differ.
        groups.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(groups)
    }

    /// One page of the groups with their member counts, by name (bytewise
    /// on both stores), after the name `after`: at most `limit` (1 to
    /// [`GROUPS_PAGE_MAX`]) and whether more follow. The back office's
    /// programme page reads this rather than every group at once.
    pub async fn groups_page(
        &self,
        after: Option<String>,
        limit: u32,
    ) -> Result<GroupPage, AccountError> {
        let limit = limit.clamp(1, GROUPS_PAGE_MAX);
        let page = self
            .books
            .read(move |db| {
                // PostgreSQL's default collation follows the cluster's
                // locale; "C" compares bytes, as SQLite's BINARY does.
                let by = match db.dialect() {
                    Dialect::Sqlite => "g.name",
                    Dialect::Postgres => "g.name COLLATE \"C\"",
                };
                let sql = format!(
                    "SELECT g.name, g.description, g.created_at,
                            (SELECT COUNT(*) FROM account_groups m WHERE m.group_name = g.name)
                     FROM groups g WHERE CAST(?1 AS TEXT) IS NULL OR {by} > CAST(?1 AS TEXT)
                     ORDER BY {by} LIMIT ?2"
                );
                let mut groups = db.query_map(&sql, args![after, i64::from(limit) + 1], |r| {
                    Ok(GroupView {
                        name: r.get(0)?,
                        description: r.get(1)?,
                        created_at: r.get(2)?,
                        members: r.get(3)?,
                    })
                })?;
                let more = groups.len() > limit as usize;
                groups.truncate(limit as usize);
                let next_after = if more {
                    groups.last().map(|g| g.name.clone())
                } else {
                    None
                };
                Ok(GroupPage { groups, next_after })
            })
            .await?;
        Ok(page)
    }

    /// Deletes a group; with members only when `force` (they leave it).
    /// Returns how many accounts left it.
    pub async fn delete_group(&self, name: &str, force: bool) -> Result<i64, AccountError> {
        let name = group_name(name)?;
        self.books
            .write(move |db| {
                let exists = db
                    .query_opt("SELECT 1 FROM groups WHERE name = ?1", args![name], |_| {
                        Ok(())
                    })?
                    .is_some();
                if !exists {
                    return Ok(Err(AccountError::UnknownGroup(name.clone())));
                }
                let members: i64 = db.query_row(
                    "SELECT COUNT(*) FROM account_groups WHERE group_name = ?1",
                    args![name],
                    |r| r.get(0),
                )?;
                if members > 0 && !force {
                    return Ok(Err(AccountError::GroupInUse { members }));
                }
                db.execute(
                    "DELETE FROM account_groups WHERE group_name = ?1",
                    args![name],
                )?;
                db.execute("DELETE FROM groups WHERE name = ?1", args![name])?;
                Ok(Ok(members))
            })
            .await?
    }

    /// Replaces an account's groups with `groups` (each must exist).
    /// Returns the groups now.
    pub async fn set_groups(
        &self,
        account: i64,
        groups: Vec<String>,
    ) -> Result<Vec<String>, AccountError> {
        let mut groups = groups
            .iter()
            .map(|g| group_name(g))
            .collect::<Result<Vec<_>, _>>()?;
        groups.sort();
        groups.dedup();
        self.books
            .write(move |db| {
                if !account_exists(db, account)? {
                    return Ok(Err(AccountError::UnknownAccount));
                }
                if let Some(g) = missing_group(db, &groups)? {
                    return Ok(Err(AccountError::UnknownGroup(g)));
                }
                db.execute(
                    "DELETE FROM account_groups WHERE account_id = ?1",
                    args![account],
                )?;
                for g in &groups {
                    db.execute(
                        "INSERT INTO account_groups (account_id, group_name) VALUES (?1, ?2)",
                        args![account, g],
                    )?;
                }
                Ok(Ok(groups_of(db, account)?))
            })
            .await?
    }
}
