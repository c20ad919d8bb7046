"""The decision policy as pure DataFrame functions: admitted events x certified features -> decisions,
the actions they call for, and one audit record per decision and per action.

A policy is rules with weights (``common.config.DecisionConfig``): the score is the sum of the weights
of the rules that fire, capped at 1; ``decline_score`` and ``review_score`` turn it into an outcome, and
the rules that fired are the reason codes. An event whose account has no certified features is never
approved by default: it is reviewed (or declined, when its own rules say so) with
``no_certified_features``. Ids are derived, never drawn: a decision id from (event id, policy version),
an action id from (decision id, action type), an audit id from (kind, subject id).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from common.config import DecisionConfig
from common.events import CARD_NOT_PRESENT_CHANNELS

APPROVE, REVIEW, DECLINE = "APPROVE", "REVIEW", "DECLINE"
OPEN_CASE, BLOCK_CARD = "open_case", "block_card"
ACTION_FOR = {REVIEW: OPEN_CASE, DECLINE: BLOCK_CARD}
NO_FEATURES, LOW_RISK = "no_certified_features", "low_risk"
FEATURE_COLUMNS = ("txn_count_1d", "txn_count_7d", "txn_count_30d", "distinct_countries_30d",
                   "card_not_present_share_30d")
LINEAGE = ("run_id", "app_id", "batch_id")


def derived_id(prefix: str, *parts: Column) -> Column:
    """``<prefix>-`` and 32 hex characters of SHA-256 over the parts: the same parts, the same id."""
    return F.concat(F.lit(f"{prefix}-"), F.substring(F.sha2(F.concat_ws("|", *parts), 256), 1, 32))


def latest_per(frame: DataFrame, key: str) -> DataFrame:
    """The newest snapshot row per ``key`` of a snapshot product (by cut-off, then run id)."""
    newest = frame.groupBy(key).agg(F.max(F.struct("as_of", "run_id")).alias("_newest"))
    return frame.join(newest, on=[key], how="inner").where(F.struct("as_of", "run_id") == F.col("_newest")).drop("_newest")


def rules(policy: DecisionConfig) -> dict[str, Column]:
    """Reason code -> the condition under which it fires (nulls never fire)."""
    return {
        "high_amount": F.col("amount_minor") >= F.lit(policy.high_amount_minor),
        "card_not_present": F.col("channel").isin(*CARD_NOT_PRESENT_CHANNELS),
        "micro_card_not_present": F.col("channel").isin(*CARD_NOT_PRESENT_CHANNELS)
                                  & (F.col("amount_minor") < F.lit(policy.micro_amount_minor)),
        "high_velocity": F.col("txn_count_1d") >= F.lit(policy.velocity_1d),
        "many_countries": F.col("distinct_countries_30d") >= F.lit(policy.many_countries_30d),
        "risky_merchant": F.col("merchant_fraud_rate") >= F.lit(policy.risky_merchant_fraud_rate),
        "risky_country": F.col("country").isin(*policy.risky_countries),
    }


def score_and_reasons(policy: DecisionConfig) -> tuple[Column, Column]:
    """A rule with weight 0 is switched off: it neither scores nor explains."""
    fired = {code: F.coalesce(condition, F.lit(False)) for code, condition in rules(policy).items()
             if policy.weights.get(code, 0.0) > 0}
    score = F.least(F.lit(1.0), sum((F.when(cond, F.lit(float(policy.weights.get(code, 0.0))))
                                     .otherwise(F.lit(0.0)) for code, cond in fired.items()), F.lit(0.0)))
    # No lambda functions (they run interpreted): empty strings for rules that did not fire, removed at once.
    codes = F.array_remove(F.array(*[F.when(cond, F.lit(code)).otherwise(F.lit("")) for code, cond in fired.items()]), "")
    return F.round(score, 4), codes


def decide(events: DataFrame, features: DataFrame, merchants: DataFrame, policy: DecisionConfig) -> DataFrame:
    """One decision per event. ``features``: the newest certified account snapshot per account;
    ``merchants``: the newest certified merchant snapshot per merchant."""
    accounts = features.select("account_id", *FEATURE_COLUMNS, F.col("as_of").alias("features_as_of"))
    risk = merchants.select("merchant_id", F.col("fraud_rate").alias("merchant_fraud_rate"))
    joined = events.join(accounts, on="account_id", how="left").join(risk, on="merchant_id", how="left")
    score, fired = score_and_reasons(policy)
    missing = F.col("features_as_of").isNull()
    outcome = (F.when(F.col("score") >= F.lit(policy.decline_score), F.lit(DECLINE))
                .when(missing | (F.col("score") >= F.lit(policy.review_score)), F.lit(REVIEW))
                .otherwise(F.lit(APPROVE)))
    reasons = (F.when(missing, F.concat(F.array(F.lit(NO_FEATURES)), F.col("fired")))
                .when(F.size("fired") == 0, F.array(F.lit(LOW_RISK))).otherwise(F.col("fired")))
    return (joined.withColumn("score", score).withColumn("fired", fired)
            .select(derived_id("dec", F.col("event_id"), F.lit(policy.policy_version)).alias("decision_id"),
                    "event_id", "account_id", "card_id", "merchant_id", "event_time", "amount_minor", "currency",
                    outcome.alias("outcome"), "score", reasons.alias("reasons"),
                    F.lit(policy.policy_version).alias("policy_version"), "features_as_of",
                    F.col("run_id").alias("event_run_id")))


def actions(decisions: DataFrame) -> DataFrame:
    """REVIEW opens a case, DECLINE blocks the card; APPROVE calls for nothing."""
    action_type = F.coalesce(*[F.when(F.col("outcome") == outcome, F.lit(kind)) for outcome, kind in ACTION_FOR.items()])
    return (decisions.withColumn("action_type", action_type).where(F.col("action_type").isNotNull())
            .select(derived_id("act", F.col("decision_id"), F.col("action_type")).alias("action_id"),
                    "decision_id", "event_id", "account_id", "card_id", "action_type",
                    F.array_join("reasons", ",").alias("reason"), "policy_version"))


def action_counts(outcomes: dict[str, int]) -> dict[str, int]:
    """Actions by type for decisions counted by outcome: ``actions`` calls for one per REVIEW or DECLINE."""
    return {ACTION_FOR[outcome]: n for outcome, n in sorted(outcomes.items()) if outcome in ACTION_FOR and n}


def audit(decisions: DataFrame, actions_: DataFrame) -> DataFrame:
    """One audit record per decision and per action: what was done, why, under which policy."""
    decided = decisions.select(F.lit("decision").alias("kind"), F.col("decision_id").alias("subject_id"),
                               "decision_id", "event_id", F.col("outcome").alias("what"), "reasons", "policy_version")
    acted = actions_.select(F.lit("action").alias("kind"), F.col("action_id").alias("subject_id"), "decision_id",
                            "event_id", F.col("action_type").alias("what"), F.split("reason", ",").alias("reasons"),
                            "policy_version")
    both = decided.unionByName(acted)
    return both.select(derived_id("aud", F.col("kind"), F.col("subject_id")).alias("audit_id"), *both.columns)
