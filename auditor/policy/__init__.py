"""The pure NetworkPolicy engine: validation, selectors, decisions.  No I/O, no logging, no clock.

Public API (see docs/policy-engine.md):
- `validate.validate_policy(policy) -> list[InvalidObjectError]`
- `state.ClusterState` (`build`, `empty`, `apply`, queries), `state.policy_applies`, `state.policy_id`
- `history.ClusterHistory(window_ns=24h, initial=None)`: `apply`, `at`, `latest`, `changes_between`, `prune`
- `engine.PolicyEngine(*, enforce_node_traffic=False, cidr_match_nodes=False)`: `decide`, `side`
- `coverage`: `isolation`, `selected_pods`, `rule_admits_everyone`, `allows_port`
"""
