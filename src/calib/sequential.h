/* Activation ranges calibrated in forward order with every earlier quantizer on (RepQ-ViT's code). */
#ifndef VITQ_CALIB_SEQUENTIAL_H
#define VITQ_CALIB_SEQUENTIAL_H

#include "calib/run.h"

/* Calibrate every activation quantizer of the run again, in forward order, on the inputs it sees when
 * the weights and every activation point before it are already quantized - as RepQ-ViT's code does
 * when its quantizers initialise themselves on the first forward pass with quantization on - instead
 * of on the float network's activations. All calibration images go through each layer before its
 * quantizer is finalized, so each quantizer sees the whole set, not the first batch. Each point costs
 * one pass of its block per observation pass of its scheme (the streams entering the block are kept,
 * quantized). ViT and DeiT only: Swin models keep the float statistics. The run's network must be a
 * private copy with weight rows (a method with copies_model): its packed weights are swapped for the
 * fake-quantized ones during the passes and restored after. */
vitq_status vitq_i_run_observe_sequential(vitq_i_run *r);

#endif
