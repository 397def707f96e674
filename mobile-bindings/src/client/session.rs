//! The session: logging in (registering the device; a phone that changed hands starts over
//! empty, but only when the last user has nothing unsent), logging out, and the access token
//! every request to the server carries.
//!
//! An access token past its expiry (or refused as expired, or its session as ended) is
//! exchanged once for a new pair, which is stored before it is used; a refresh that got no
//! answer is sent once more with the same token (the server's grace window takes it); a
//! refused refresh ends the session and touches no local data. Editing needs no session: edits
//! are the last logged-in user's, and their next login syncs them.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gridsync_core::signed::KeySet;
use serde::Deserialize;
use serde_json::json;

use super::answers::{parse_json, unexpected};
use super::{Client, now};
use crate::error::{ClientError, Result};
use crate::model::UserInfo;
use crate::store::{Profile, Session};
use crate::transport::{Answer, Traffic};

const JSON: &str = "application/json";
/// Refresh this long before the access token's stated expiry, for clock skew and slow links.
const EXPIRY_MARGIN_SECS: i64 = 30;

impl Client {
    pub fn device_id(&self) -> Result<String> {
        self.lock().store()?.device_id()
    }

    /// Logs in on this device (registering it at the first login) and keeps the session.
    pub fn login(&self, username: &str, password: &str, device_name: &str) -> Result<UserInfo> {
        let _sync = self.sync_guard();
        let mut traffic = Traffic::default();
        match self.try_login(username, password, device_name, &mut traffic) {
            Err(ClientError::Invalid(msg)) if msg == DEVICE_TAKEN => {
                // This phone changed hands.
                self.hand_over()?;
                self.try_login(username, password, device_name, &mut traffic)
            }
            other => other,
        }
        .and_then(|info| self.grids_after_login(info))
    }

    fn try_login(
        &self,
        username: &str,
        password: &str,
        device_name: &str,
        traffic: &mut Traffic,
    ) -> Result<UserInfo> {
        let device_id = self.device_id()?;
        let body = json!({
            "username": username, "password": password,
            "device_id": device_id, "device_name": device_name,
            "device_key": self.device_public_key()?,
        });
        let answer = self.transport.post(
            "/api/v1/auth/login",
            JSON,
            body.to_string().as_bytes(),
            None,
            traffic,
        )?;
        if !answer.ok() {
            let problem = answer.problem();
            return Err(match problem.code.as_str() {
                "device_revoked" => self.wipe_revoked()?,
                "device_taken" => ClientError::Invalid(DEVICE_TAKEN.into()),
                "invalid_credentials" | "account_disabled" | "rate_limited" => {
                    ClientError::Unauthorized(problem.detail)
                }
                _ => unexpected(&answer),
            });
        }
        let tokens: Tokens = parse_json(&answer)?;
        let access_expires_at = now() + i64::try_from(tokens.expires_in).unwrap_or(i64::MAX / 2);
        let me = self
            .transport
            .get("/api/v1/me", Some(&tokens.access_token), traffic)?;
        if !me.ok() {
            return Err(unexpected(&me));
        }
        let user: Profile = parse_json(&me)?;
        // Central's keys, kept to check what an office hub hands on in central's name.
        let keys = self
            .transport
            .get("/.well-known/jwks.json", None, traffic)?;
        if !keys.ok() {
            return Err(unexpected(&keys));
        }
        KeySet::from_jwks(&keys.body)
            .map_err(|e| ClientError::Server(format!("the server's key set: {e}")))?;
        let handed_over = self
            .lock()
            .last_user
            .as_ref()
            .is_some_and(|last| last.id != user.id);
        if handed_over {
            // The server knew this device under no one or under this user (its database was
            // replaced, say), yet the phone's data is another user's: a handover all the same.
            let _ = self.transport.post_once(
                "/api/v1/auth/logout",
                JSON,
                b"",
                Some(&tokens.access_token),
                traffic,
            );
            return Err(ClientError::Invalid(DEVICE_TAKEN.into()));
        }
        let session = Session {
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            access_expires_at,
            user,
            offline_grant: tokens.offline_grant,
            revoked_hubs: tokens.revoked_hubs,
        };
        let mut state = self.lock();
        state.store()?.start_session(&session)?;
        state.store()?.set_central_keys(&keys.body)?;
        let info = user_info(&session.user);
        state.last_user = Some(session.user.clone());
        state.session = Some(session);
        Ok(info)
    }

    /// Ends the session here and, when the server is reachable, there. Local reports stay, and
    /// the user stays the author of local edits until someone else logs in.
    pub fn logout(&self) -> Result<()> {
        let _sync = self.sync_guard();
        let session = self.lock().session.clone();
        if let Some(session) = session {
            // Best effort, one try: being offline must not keep anyone logged in.
            let _ = self.transport.post_once(
                "/api/v1/auth/logout",
                JSON,
                b"",
                Some(&session.access_token),
                &mut Traffic::default(),
            );
        }
        self.lock().end_session()
    }

    /// The user of the live session; `None` when logged out or the session ended.
    pub fn current_user(&self) -> Option<UserInfo> {
        self.lock().session.as_ref().map(|s| user_info(&s.user))
    }

    /// The grant the server last gave this device for village office hubs (a JWS naming the
    /// device's key), while a session lasts; `None` for roles no hub serves.
    pub fn offline_grant(&self) -> Option<String> {
        self.lock().session.as_ref()?.offline_grant.clone()
    }

    /// This installation's public key, as the server's grants name it: unpadded base64url.
    fn device_public_key(&self) -> Result<String> {
        let seed = self.lock().store()?.device_key()?;
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        Ok(URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()))
    }

    /// The user who logged in here last, session or not: the author of local edits.
    pub fn last_user(&self) -> Option<UserInfo> {
        self.lock().last_user.as_ref().map(user_info)
    }

    /// The access token, refreshed first when it is (about to be) expired.
    pub(super) fn access_token(&self, traffic: &mut Traffic) -> Result<String> {
        let (token, expires_at) = {
            let state = self.lock();
            let session = state
                .session
                .as_ref()
                .ok_or_else(|| ClientError::Unauthorized("log in first".into()))?;
            (session.access_token.clone(), session.access_expires_at)
        };
        if expires_at - EXPIRY_MARGIN_SECS > now() {
            return Ok(token);
        }
        self.refresh(traffic)
    }

    /// Exchanges the refresh token for a new pair and stores it before anything uses it. A
    /// spent refresh token sent again ends the session, except once within the server's grace
    /// window: so it is retried once, with the same token, only when no answer came (the server
    /// may have spent it), and never after an answer. A refused refresh ends the session and
    /// leaves the local data alone.
    pub(super) fn refresh(&self, traffic: &mut Traffic) -> Result<String> {
        let refresh_token = {
            let state = self.lock();
            state
                .session
                .as_ref()
                .map(|s| s.refresh_token.clone())
                .ok_or_else(|| ClientError::Unauthorized("log in first".into()))?
        };
        let body = json!({
            "refresh_token": refresh_token,
            "device_key": self.device_public_key()?,
        })
        .to_string();
        let send = |traffic: &mut Traffic| {
            self.transport
                .post_once("/api/v1/auth/refresh", JSON, body.as_bytes(), None, traffic)
        };
        let answer = match send(traffic) {
            Err(ClientError::Network(_)) => send(traffic)?,
            other => other?,
        };
        if !answer.ok() {
            let problem = answer.problem();
            return Err(match problem.code.as_str() {
                "device_revoked" => self.wipe_revoked()?,
                "refresh_invalid" | "refresh_reused" | "account_disabled" => {
                    self.lock().end_session()?;
                    ClientError::Unauthorized(format!(
                        "the session ended ({}); log in again",
                        problem.detail
                    ))
                }
                _ => unexpected(&answer),
            });
        }
        let tokens: Tokens = parse_json(&answer)?;
        // Central's keys again with each new grant, so receipts signed with a key it rotated
        // in meanwhile verify at the hub; the keys kept stay when these cannot be read.
        let keys = self
            .transport
            .get("/.well-known/jwks.json", None, traffic)
            .ok()
            .filter(|k| k.ok() && KeySet::from_jwks(&k.body).is_ok());
        let mut state = self.lock();
        if let Some(keys) = keys {
            state.store()?.set_central_keys(&keys.body)?;
        }
        let Some(mut session) = state.session.clone() else {
            return Err(ClientError::Unauthorized("logged out during sync".into()));
        };
        session.access_token = tokens.access_token.clone();
        session.refresh_token = tokens.refresh_token;
        session.access_expires_at = now() + i64::try_from(tokens.expires_in).unwrap_or(0);
        session.offline_grant = tokens.offline_grant;
        session.revoked_hubs = tokens.revoked_hubs;
        state.store()?.set_session(Some(&session))?;
        state.session = Some(session);
        Ok(tokens.access_token)
    }

    /// Sends a request with the access token, refreshing it once when the server says it
    /// expired; a revoked device is wiped.
    pub(super) fn authorized(
        &self,
        traffic: &mut Traffic,
        send: impl Fn(&str, &mut Traffic) -> Result<Answer>,
    ) -> Result<Answer> {
        let mut token = self.access_token(traffic)?;
        let mut refreshed = false;
        loop {
            let answer = send(&token, traffic)?;
            if answer.status != 401 {
                return Ok(answer);
            }
            match answer.problem().code.as_str() {
                "device_revoked" => return Err(self.wipe_revoked()?),
                // A HEAD answer has no body: its 401 is taken as an expired token once.
                "token_expired" | "token_invalid" | "unauthenticated" | "session_ended" | ""
                    if !refreshed =>
                {
                    refreshed = true;
                    token = self.refresh(traffic)?;
                }
                _ => return Err(ClientError::Unauthorized(answer.problem().detail)),
            }
        }
    }

    /// Reads who this user is now (a new grid or role) and keeps it with the session.
    pub(super) fn refresh_profile(&self, traffic: &mut Traffic) -> Result<()> {
        let token = self.access_token(traffic)?;
        let me = self.transport.get("/api/v1/me", Some(&token), traffic)?;
        if !me.ok() {
            return Err(unexpected(&me));
        }
        let user: Profile = parse_json(&me)?;
        let mut state = self.lock();
        let Some(mut session) = state.session.clone() else {
            return Ok(());
        };
        session.user = user;
        state.store()?.set_session(Some(&session))?;
        state.session = Some(session);
        Ok(())
    }

    /// Test hook: pretends the access token expired, so the next request refreshes it.
    #[doc(hidden)]
    pub fn expire_access_token(&self) -> Result<()> {
        let mut state = self.lock();
        let Some(mut session) = state.session.clone() else {
            return Err(ClientError::Unauthorized("log in first".into()));
        };
        session.access_expires_at = 0;
        state.store()?.set_session(Some(&session))?;
        state.session = Some(session);
        Ok(())
    }
}

const DEVICE_TAKEN: &str = "device_taken";

#[derive(Deserialize)]
struct Tokens {
    access_token: String,
    refresh_token: String,
    expires_in: u64,
    /// Absent from servers older than offline grants.
    #[serde(default)]
    offline_grant: Option<String>,
    #[serde(default)]
    revoked_hubs: Vec<String>,
}

fn user_info(p: &Profile) -> UserInfo {
    UserInfo {
        id: p.id.clone(),
        username: p.username.clone(),
        display_name: p.display_name.clone(),
        role: p.role.clone(),
        org_unit_id: p.org_unit_id.clone(),
        scope_path: p.scope_path.clone(),
        clearance: p.clearance,
        device_id: p.device_id.clone(),
    }
}
