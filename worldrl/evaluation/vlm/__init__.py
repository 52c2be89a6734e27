"""VLM reasoning evaluations: question sets (physics QA, BLINK), fine-tuning a fusion model on them, scoring."""
