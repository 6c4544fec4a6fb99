"""Names of the routing methods and gate rules (torch-free: the CLI and trix.Model use them too)."""

# Routers that score every tile against a signature matrix S [T, d] (scores = normalize(x) @ S^T):
# emergent (S = sign of the sum of the tile's ternary up rows), random_signatures (S fixed random
# ternary, drawn at init: content-based but not read from the weights) and mean_signature (S = mean
# of the tile's ternary up rows, not sign-quantised: normalize(x) @ S^T is the tile's mean
# pre-activation up to its scale).
SIGNATURE_ROUTERS = ("emergent", "random_signatures", "mean_signature")
# Routers with a differentiable probability over tiles (gate gradient and balance loss): the signature
# routers, the learned gate and autonomy (each tile's score is the L2 norm of its own hidden
# activation, Autonomy-of-Experts style).
SCORE_ROUTERS = SIGNATURE_ROUTERS + ("learned", "autonomy")
ROUTING_METHODS = SCORE_ROUTERS + ("random", "hash", "dense")
# "unit": the chosen tile's gate has value exactly 1 for every method, and score routers get the
# gradient Switch's probability gate would give (1 + p - stop_grad(p)); "prob": the gate is p itself
# (renormalised over the chosen tiles for top_k > 1), as in Switch / learned-router MoEs.
GATE_RULES = ("unit", "prob")
