"""Celery tasks of the reward-model app: take ids, call one service.

Evaluations run on the "default" queue, training runs on "training",
best-of-K previews (they generate) on "sampling".
Each status row makes a second delivery harmless (core.jobs.claim): a finished job is left alone,
one held by a live worker too; a lost one is given back by the reconciler, and a training run
resumes from its last checkpoint.
"""

from core.jobs import job_task

from .services import judging, rewards, runs


@job_task(name="rewardmodel.train_reward_model", queue="training", long=True, bind=True)
def train_reward_model_run(self, run_id: int) -> str:
    """Train (or resume) one reward model; a delivery that finds the run held by a live worker does nothing."""
    return runs.run_execute(run_id=run_id, task_id=self.request.id or "").status


@job_task(name="rewardmodel.evaluate_reward_model", queue="default", long=True)
def evaluate_reward_model(evaluation_id: int) -> str:
    """Score a dataset's held-out pairs with a trained reward model."""
    return runs.evaluation_run(evaluation_id=evaluation_id).status


@job_task(name="rewardmodel.best_of_k_preview", queue="sampling", long=True)
def best_of_k_preview(preview_id: int) -> str:
    """Sample K responses for one preview and rank them by reward."""
    return rewards.best_of_k_preview_run(preview_id=preview_id).status


@job_task(name="rewardmodel.judge_responses", queue="default", long=True)
def judge_responses(judging_id: int) -> str:
    """Score a scope's stored responses with a trained reward model, for the variant leaderboard."""
    return judging.response_judging_run(judging_id=judging_id).status
