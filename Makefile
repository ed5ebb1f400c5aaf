# fakewatch: common tasks. Every target creates .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
MARKS ?= ../shared/data/logos
STAMP := $(VENV)/.installed

.PHONY: venv sysdeps test lint demo data data-more data-weak data-large data-96 data-pairs data-pairs-brand data-pairs-hands data-pairs-bent train train-detector train-embedder train-hands train-verifier export validate bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[train,dev,ray]'
	touch $(STAMP)

venv: $(STAMP)

# System programs the tests use: ffprobe (checks decoded frame times), Chromium (renders the
# evaluation report), nginx with its RTMP module (live streams for the daemon tests). The main
# job itself needs none of them: ffmpeg comes with imageio-ffmpeg.
SYS_PROGRAMS := ffprobe:ffmpeg chromium:chromium nginx:nginx
RTMP_MODULE := /usr/lib/nginx/modules/ngx_rtmp_module.so
sysdeps:
	@missing=""; for pair in $(SYS_PROGRAMS); do \
	  command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair##*:}"; done; \
	[ -f $(RTMP_MODULE) ] || missing="$$missing libnginx-mod-rtmp"; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    echo "installing$$missing"; apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "make: install$$missing to run every test" >&2; fi; fi

test: $(STAMP) sysdeps
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check pipeline models scripts tests benchmarks
	$(BIN)/mypy pipeline models

# The main job on committed demo data: replay the demo clips against the demo gallery.
demo: $(STAMP)
	rm -f out/demo/alerts.jsonl out/demo/alerts.sqlite
	$(BIN)/fakewatch replay demo/clips/*.mp4 --gallery demo/gallery --alerts out/demo/alerts.jsonl

# Training data from the brand marks (training brands only; held-out frames for validation).
data: $(STAMP)
	$(BIN)/python scripts/make_training_data.py detector --marks $(MARKS) --out work/det_train --frames 8000 --seed 1 --workers 2
	$(BIN)/python scripts/make_training_data.py detector --marks $(MARKS) --split heldout --out work/det_val --frames 400 --seed 2 --workers 2
	$(BIN)/python scripts/make_training_data.py crops --marks $(MARKS) --out work/crops_train.npz --authentic 8 --counterfeit 6 --seed 3
	$(BIN)/python scripts/make_training_data.py crops --marks $(MARKS) --out work/crops_train2.npz --authentic 4 --counterfeit 8 --seed 4
	$(BIN)/python scripts/make_training_data.py references --marks $(MARKS) --out work/references_train.npy

# Eight more crop sets, four times the counterfeits per brand, for embedder stages 7 and 8: about 4.5 min per set on one core.
data-more: $(STAMP)
	for s in 11 12 13 14 15 16 17 18; do \
	  $(BIN)/python scripts/make_training_data.py crops --marks $(MARKS) --out work/crops_train_s$$s.npz \
	    --authentic 4 --counterfeit 16 --seed $$s || exit 1; \
	done

# Four crop sets for embedder stage 9 (the shipped embedder) that draw the families the embedder separates worst
# (stroke, aspect, extra) twice as often as erase, warp and splice, and mirror not at all.
data-weak: $(STAMP)
	for s in 19 20 21 22; do \
	  $(BIN)/python scripts/make_training_data.py crops --marks $(MARKS) --out work/crops_train_s$$s.npz \
	    --authentic 4 --counterfeit 16 --seed $$s --families stroke,stroke,aspect,aspect,extra,extra,erase,warp,splice || exit 1; \
	done

# Four crop sets of marks rendered 48-110 px (stream marks are mostly large) for embedder stage 11
# (`configs/train_embedder_stage11.yaml`); four processes at once.
data-large: $(STAMP)
	mkdir -p work/c48
	pids=""; for s in 51 52 53 54; do \
	  $(BIN)/python scripts/make_training_data.py crops --marks $(MARKS) --out work/c48/crops_s$$s.npz \
	    --authentic 4 --counterfeit 16 --seed $$s --families stroke,stroke,aspect,aspect,extra,extra,erase,warp,splice \
	    --apparent 48 110 & pids="$$pids $$!"; \
	done; for p in $$pids; do wait $$p || exit 1; done

# Four crop sets at 96 px for the larger-crop embedder (stage 10, `configs/train_embedder_stage10.yaml`).
data-96: $(STAMP)
	mkdir -p work/c96
	for s in 31 32 33 34; do \
	  $(BIN)/python scripts/make_training_data.py crops --marks $(MARKS) --out work/c96/crops_s$$s.npz \
	    --authentic 6 --counterfeit 14 --seed $$s --crop-size 96 || exit 1; \
	done

# Verifier pairs (crops aligned with their brand's gallery mark by the ECC fit): three training sets of
# 2,000 training brands each, one set of every held-out brand for the figure after each epoch (about 8 min per set).
data-pairs: $(STAMP)
	mkdir -p work/pairs
	for s in 11 13 14; do \
	  $(BIN)/python scripts/make_training_data.py pairs --marks $(MARKS) --out work/pairs/pairs_s$$s.npz \
	    --brands 2000 --authentic 3 --seed $$s --workers 2 || exit 1; \
	done
	$(BIN)/python scripts/make_training_data.py pairs --marks $(MARKS) --split heldout --out work/pairs/pairs_val.npz \
	  --brands 608 --authentic 3 --seed 12 --workers 2

# Pairs for the verifier's same-brand head: each brand's crops also laid under the marks of its five nearest brands by
# the shipped embedder (five such pairs per brand); two training sets of 1,200 brands and the held-out brands' (about 6 min each).
data-pairs-brand: $(STAMP)
	mkdir -p work/pairs
	for s in 21 23; do \
	  $(BIN)/python scripts/make_training_data.py pairs --marks $(MARKS) --out work/pairs/pairs_b$$s.npz \
	    --brands 1200 --authentic 2 --other-brands 5 --seed $$s --workers 2 || exit 1; \
	done
	$(BIN)/python scripts/make_training_data.py pairs --marks $(MARKS) --split heldout --out work/pairs/pairs_bval.npz \
	  --brands 608 --authentic 3 --other-brands 4 --seed 12 --workers 2

# Pairs with a presenter's hand over half the marks (up to 0.3 of their size), recording where each hand lies: the
# hand net learns from them (a training set and the held-out brands', about 8 and 3 min).
data-pairs-hands: $(STAMP)
	mkdir -p work/pairs
	$(BIN)/python scripts/make_training_data.py pairs --marks $(MARKS) --out work/pairs/pairs_h31.npz \
	  --brands 2000 --authentic 3 --seed 31 --workers 2 --hands 0.5,0.05,0.3
	$(BIN)/python scripts/make_training_data.py pairs --marks $(MARKS) --split heldout --out work/pairs/pairs_hval.npz \
	  --brands 1000 --authentic 3 --seed 32 --workers 2 --hands 0.5,0.05,0.3

# Pairs made since warps bend without folding (session 19), with the hand net's findings left out of each alignment
# as in streams: 2,000 training brands; 1,200 with five neighbouring brands' pairs each; 300 held-out brands made the
# same way (about 10, 10 and 2 min).
data-pairs-bent: $(STAMP)
	mkdir -p work/pairs
	$(BIN)/python scripts/make_training_data.py pairs --marks $(MARKS) --out work/pairs/pairs_p47.npz \
	  --brands 2000 --authentic 3 --seed 47 --workers 2 --hand-net models/hands.onnx
	$(BIN)/python scripts/make_training_data.py pairs --marks $(MARKS) --out work/pairs/pairs_b45.npz \
	  --brands 1200 --authentic 2 --other-brands 5 --seed 45 --workers 2 --hand-net models/hands.onnx
	$(BIN)/python scripts/make_training_data.py pairs --marks $(MARKS) --split heldout --out work/pairs/pairs_bv46.npz \
	  --brands 300 --authentic 3 --other-brands 4 --seed 46 --workers 2 --hand-net models/hands.onnx

train-detector: $(STAMP)
	$(BIN)/python -m models.training.train_detector --config configs/train_detector.yaml
	$(BIN)/python -m models.training.train_detector --config configs/train_detector_stage2.yaml
	$(BIN)/python -m models.training.train_detector --config configs/train_detector_stage3.yaml
	$(BIN)/python -m models.training.train_detector --config configs/train_detector_stage4.yaml
	$(BIN)/python -m models.training.train_detector --config configs/train_detector_stage5.yaml

train-embedder: $(STAMP)
	$(BIN)/python -m models.training.train_embedder --config configs/train_embedder.yaml
	$(BIN)/python -m models.training.train_embedder --config configs/train_embedder_stage2.yaml
	$(BIN)/python -m models.training.train_embedder --config configs/train_embedder_stage3.yaml
	$(BIN)/python -m models.training.train_embedder --config configs/train_embedder_stage5.yaml
	$(BIN)/python -m models.training.train_embedder --config configs/train_embedder_stage7.yaml
	$(BIN)/python -m models.training.train_embedder --config configs/train_embedder_stage8.yaml
	$(BIN)/python -m models.training.train_embedder --config configs/train_embedder_stage9.yaml

train-hands: $(STAMP)
	$(BIN)/python -m models.training.train_hands --config configs/train_hands.yaml
	$(BIN)/python -m models.training.export hands runs/hands/last.pt models/hands.onnx

train-verifier: $(STAMP)
	$(BIN)/python -m models.training.train_verifier --config configs/train_verifier.yaml
	$(BIN)/python -m models.training.train_verifier --config configs/train_verifier_brand.yaml
	$(BIN)/python -m models.training.train_verifier --config configs/train_verifier_brandbody.yaml
	$(BIN)/python -m models.training.train_verifier --config configs/train_verifier_brandbody_bent.yaml
	$(BIN)/python -m models.training.train_verifier --config configs/train_verifier_authentic_bent.yaml

train: data data-more data-weak data-pairs data-pairs-brand data-pairs-hands data-pairs-bent train-hands train-detector train-embedder train-verifier export

export: $(STAMP)
	$(BIN)/python -m models.training.export detector runs/detector_stage5/last.pt models/detector.onnx --input-size 800x448
	$(BIN)/python -m models.training.export embedder runs/embedder_stage9/last.pt models/embedder.onnx
	$(BIN)/python -m models.training.cropper models/cropper.onnx
	$(BIN)/python -m models.training.export hands runs/hands/last.pt models/hands.onnx
	$(BIN)/python -m models.training.export verifier runs/verifier_bent/last.pt models/verifier.onnx

validate: $(STAMP)
	$(BIN)/python scripts/validate_models.py --marks $(MARKS) --det-val work/det_val --out models/validation.json

bench: $(STAMP)
	$(BIN)/python benchmarks/detector_speed.py
	$(BIN)/python benchmarks/embedder_speed.py
	$(BIN)/python benchmarks/outbox_recent.py

clean:
	rm -rf $(VENV) work runs .pytest_cache
