"""The real tasks: the env factory (``real_envs``), their reward and termination rules (``rules``).

This layer sits below ``worldrl.data``, which records these envs, and ``worldrl.envs``, which imitates them
with a learned model and may score its predictions with the rules. Import the submodules directly; this
package imports nothing, so ``import worldrl.tasks.rules`` does not pull in Gymnasium's env registry.
"""
