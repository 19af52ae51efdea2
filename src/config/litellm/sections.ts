// The keys of LiteLLM's settings sections: which ones the translation maps, and for the
// ones it cannot, what the gateway does instead. Every key present is either mapped or
// reported; nothing is dropped without a word.

export const TOP_KEYS = ['model_list', 'litellm_settings', 'router_settings', 'general_settings', 'environment_variables'] as const;

/** Keys read by translate.ts, per section. */
export const MAPPED = {
  litellm_settings: [
    'fallbacks', 'context_window_fallbacks', 'default_fallbacks', 'num_retries', 'request_timeout', 'drop_params', 'set_verbose', 'json_logs',
    'allowed_fails', 'cooldown_time', 'max_fallbacks', 'max_budget', 'budget_duration', 'cache', 'cache_params',
  ],
  router_settings: [
    'routing_strategy', 'num_retries', 'timeout', 'stream_timeout', 'allowed_fails', 'cooldown_time', 'retry_after', 'model_group_alias',
    'fallbacks', 'context_window_fallbacks', 'default_fallbacks', 'max_fallbacks', 'enable_pre_call_checks', 'default_max_parallel_requests',
    'redis_url', 'redis_host', 'redis_port', 'redis_password', 'provider_budget_config', 'cache_responses',
  ],
  general_settings: [
    'master_key', 'health_check_interval', 'background_health_checks', 'alerting', 'alert_to_webhook_url', 'alerting_threshold',
    'database_url', 'proxy_batch_write_at', 'allow_requests_on_db_unavailable', 'max_budget', 'budget_duration',
    'maximum_spend_logs_retention_period',
  ],
} as const;

export type Section = keyof typeof MAPPED;

const ALERT_KINDS = 'not supported yet: alerts are sent when a backend goes down or comes back (gateway.alerts), not per LiteLLM alert type';
const NO_CALLBACKS = 'not carried over: "otel" is gateway.tracing (spans over OTLP/HTTP to the collector at OTEL_EXPORTER_OTLP_ENDPOINT: write its URL as tracing.endpoint), "prometheus" is the built-in GET /metrics; other logging integrations (Langfuse, …) are not supported, and the gateway writes one JSON log line per request to stdout';
const NO_CONTENT_POLICY = 'not supported yet: a content-policy refusal is returned to the client, not rerouted';
const RETRY_POLICY = 'not supported yet: retries follow each backend\'s max_retries (connection errors, 429 and 503)';
const NO_TAGS = 'not translated: tag-based routing is not available; to route by caller, give the tagged deployments a role of their own and send keys to it with a rule (if_key_metadata)';
const NO_GLOBAL_LIMIT = 'not supported yet: the gateway has no global request limit; each backend\'s max_connections bounds what it is sent';
/** drop_params, in litellm_settings or a deployment's litellm_params. */
export const DROP_PARAMS = 'not supported yet: parameters go to OpenAI-compatible backends as the client sent them (the Ollama adapter passes only options Ollama knows)';

/** What the gateway does instead, for keys it knows and does not map. */
export const UNSUPPORTED: Record<Section, Record<string, string>> = {
  litellm_settings: {
    success_callback: NO_CALLBACKS,
    failure_callback: NO_CALLBACKS,
    callbacks: NO_CALLBACKS,
    service_callback: NO_CALLBACKS,
    input_callback: NO_CALLBACKS,
    max_end_user_budget: 'not supported: the gateway has no end users; budgets are per key (fabric keys create --budget) or per backend (budgets:)',
    content_policy_fallbacks: NO_CONTENT_POLICY,
    modify_params: 'not supported: requests are sent as the client wrote them',
    redact_user_api_key_info: 'not supported yet: the gateway logs no user key information to redact',
    turn_off_message_logging: 'already so: the gateway never logs message content',
    telemetry: 'ignored: the gateway sends no telemetry',
  },
  router_settings: {
    caching_groups: 'not supported yet: each model_name keeps its own cache entries (shared with its aliases only), so model_names in one caching group do not share answers',
    routing_strategy_args: 'not supported yet: the strategy runs with its defaults',
    retry_policy: RETRY_POLICY,
    model_group_retry_policy: RETRY_POLICY,
    allowed_fails_policy: 'not supported yet: every kind of failure counts toward allowed_fails (gateway.health.failure_threshold)',
    disable_cooldowns: 'not supported: a backend that keeps failing is always skipped for a while (gateway.health)',
    content_policy_fallbacks: NO_CONTENT_POLICY,
    enable_tag_filtering: NO_TAGS,
    tag_filtering_match_any: NO_TAGS,
  },
  general_settings: {
    store_model_in_db: 'not supported: models come from the config file; the gateway\'s database holds keys and usage only',
    database_connection_pool_limit: 'not supported yet: the gateway sizes its PostgreSQL connection pool itself',
    disable_spend_logs: 'not supported: the gateway\'s budgets and key spend are computed from its usage records, so every request is recorded (gateway.accounting: false stops that, and budgets with it)',
    maximum_spend_logs_retention_interval: 'not needed: old usage records are folded into daily totals every hour',
    maximum_spend_logs_cleanup_cron: 'not needed: old usage records are folded into daily totals every hour',
    alert_types: ALERT_KINDS,
    alerting_args: ALERT_KINDS,
    max_parallel_requests: NO_GLOBAL_LIMIT,
    global_max_parallel_requests: NO_GLOBAL_LIMIT,
  },
};

export const GENERIC = 'not supported yet; ignored';
