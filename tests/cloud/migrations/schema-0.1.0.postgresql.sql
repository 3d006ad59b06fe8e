-- The schema of edgefleet 0.1.0 (main at 775b770, the last release without migrations) on postgresql: the DDL its
-- create_schema() calls sent (Store, AlertStore, Outbox, RolloutStore), captured from that commit's code with
-- an SQLAlchemy cursor event. Frozen: never regenerate it from today's models.

CREATE TABLE box_state (
	site VARCHAR(63) NOT NULL,
	boot VARCHAR(64),
	boot_started_at FLOAT,
	seq BIGINT NOT NULL,
	first_seen FLOAT,
	last_seen FLOAT,
	clock_skew_s FLOAT,
	status_state VARCHAR(8),
	status_reason VARCHAR(256),
	status_session BIGINT NOT NULL,
	status_at FLOAT,
	status_boot VARCHAR(64),
	status_seq BIGINT NOT NULL,
	heartbeat BYTEA,
	box VARCHAR(63) NOT NULL,
	PRIMARY KEY (box)
);

CREATE TABLE health_sample (
	box VARCHAR(63) NOT NULL,
	at FLOAT NOT NULL,
	cpu_percent FLOAT,
	memory_used_percent FLOAT,
	disk_used_percent FLOAT,
	gpu_temperature_max_c FLOAT,
	gpu_utilization_avg_percent FLOAT,
	id BIGSERIAL NOT NULL,
	PRIMARY KEY (id)
);

CREATE INDEX ix_health_sample_box_at ON health_sample (box, at);

CREATE INDEX ix_health_sample_at ON health_sample (at);

CREATE TABLE health_rollup (
	box VARCHAR(63) NOT NULL,
	at FLOAT NOT NULL,
	cpu_percent FLOAT,
	memory_used_percent FLOAT,
	disk_used_percent FLOAT,
	gpu_temperature_max_c FLOAT,
	gpu_utilization_avg_percent FLOAT,
	samples INTEGER NOT NULL,
	PRIMARY KEY (box, at)
);

CREATE INDEX ix_health_rollup_at ON health_rollup (at);

CREATE TABLE unknown_box (
	box VARCHAR(63) NOT NULL,
	claimed_site VARCHAR(63),
	first_seen FLOAT NOT NULL,
	last_seen FLOAT NOT NULL,
	messages BIGINT NOT NULL,
	PRIMARY KEY (box)
);

CREATE TABLE alert (
	id VARCHAR(64) NOT NULL,
	fingerprint VARCHAR(32) NOT NULL,
	kind VARCHAR(32) NOT NULL,
	site VARCHAR(63) NOT NULL,
	box VARCHAR(63),
	detail TEXT,
	severity VARCHAR(16) NOT NULL,
	summary TEXT NOT NULL,
	description TEXT NOT NULL,
	labels TEXT NOT NULL,
	details TEXT NOT NULL,
	started_at FLOAT NOT NULL,
	fired_at FLOAT NOT NULL,
	updated_at FLOAT NOT NULL,
	state VARCHAR(16) NOT NULL,
	muted VARCHAR(16),
	muted_by TEXT NOT NULL,
	acknowledged_by VARCHAR(200),
	acknowledged_at FLOAT,
	resolved_by VARCHAR(200),
	resolved_at FLOAT,
	PRIMARY KEY (id)
);

CREATE INDEX ix_alert_site_fired_at ON alert (site, fired_at);

CREATE INDEX ix_alert_fingerprint_fired_at ON alert (fingerprint, fired_at);

CREATE INDEX ix_alert_state_fired_at ON alert (state, fired_at);

CREATE TABLE silence (
	id VARCHAR(64) NOT NULL,
	site VARCHAR(63),
	box VARCHAR(63),
	kind VARCHAR(32),
	starts_at FLOAT NOT NULL,
	ends_at FLOAT NOT NULL,
	planned_ends_at FLOAT NOT NULL,
	created_by VARCHAR(200) NOT NULL,
	comment TEXT NOT NULL,
	ended_by VARCHAR(200),
	PRIMARY KEY (id)
);

CREATE INDEX ix_silence_ends_at ON silence (ends_at);

CREATE TABLE alert_outbox (
	position BIGSERIAL NOT NULL,
	message_id VARCHAR(200) NOT NULL,
	channel_kind VARCHAR(16) NOT NULL,
	channel_name VARCHAR(63) NOT NULL,
	groups TEXT NOT NULL,
	alerts INTEGER NOT NULL,
	listed INTEGER NOT NULL,
	body BYTEA NOT NULL,
	created_at FLOAT NOT NULL,
	state VARCHAR(10) NOT NULL,
	attempts INTEGER NOT NULL,
	next_attempt_at FLOAT NOT NULL,
	last_attempt_at FLOAT,
	last_error TEXT,
	delivered_at FLOAT,
	failed_at FLOAT,
	PRIMARY KEY (position),
	UNIQUE (message_id)
);

CREATE INDEX ix_alert_outbox_state_position ON alert_outbox (state, position);

CREATE TABLE alert_notifier_state (
	id SERIAL NOT NULL,
	version INTEGER NOT NULL,
	sequence BIGINT NOT NULL,
	state BYTEA NOT NULL,
	PRIMARY KEY (id)
);

CREATE TABLE rollout (
	id VARCHAR(63) NOT NULL,
	app VARCHAR(63) NOT NULL,
	release_name VARCHAR(253) NOT NULL,
	release_yaml TEXT NOT NULL,
	spec TEXT NOT NULL,
	status TEXT NOT NULL,
	gates TEXT NOT NULL,
	state VARCHAR(32) NOT NULL,
	active BOOLEAN NOT NULL,
	created_at FLOAT NOT NULL,
	created_by VARCHAR(128) NOT NULL,
	updated_at FLOAT NOT NULL,
	idempotency_key VARCHAR(255),
	PRIMARY KEY (id)
);

CREATE UNIQUE INDEX ux_rollout_idempotency_key ON rollout (idempotency_key);

CREATE UNIQUE INDEX ux_rollout_active_app ON rollout (app) WHERE active;

CREATE INDEX ix_rollout_created_at ON rollout (created_at);

CREATE TABLE rollout_site (
	rollout_id VARCHAR(63) NOT NULL,
	site VARCHAR(63) NOT NULL,
	previous_release VARCHAR(253),
	previous_yaml TEXT,
	baseline TEXT,
	recorded_at FLOAT NOT NULL,
	PRIMARY KEY (rollout_id, site)
);

CREATE TABLE site_hold (
	site VARCHAR(63) NOT NULL,
	reason TEXT NOT NULL,
	held_by VARCHAR(128) NOT NULL,
	since FLOAT NOT NULL,
	PRIMARY KEY (site)
);

CREATE TABLE rollout_audit (
	id BIGSERIAL NOT NULL,
	rollout_id VARCHAR(63),
	at FLOAT NOT NULL,
	who VARCHAR(128) NOT NULL,
	what TEXT NOT NULL,
	before TEXT,
	after TEXT,
	PRIMARY KEY (id)
);

CREATE INDEX ix_rollout_audit_rollout_at ON rollout_audit (rollout_id, at);
