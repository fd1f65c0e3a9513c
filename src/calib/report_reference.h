/* The float reference a report compares a quantized model with (report.c). */
#ifndef VITQ_CALIB_REPORT_REFERENCE_H
#define VITQ_CALIB_REPORT_REFERENCE_H

#include "model/net.h"

/* `aligned` becomes the float network `ref` with every LayerNorm fold that the quantized network `qm`
 * carries applied to it, so that a report compares like with like. A method such as RepQ-ViT rescales
 * the channels of a LayerNorm output and compensates in the next linear layer (W[:,c] * r_c, a new
 * bias): the quantized model's weights are those folded weights quantized, and comparing them with
 * the unfolded float weights measures the fold, not the quantization. The aligned network takes the
 * quantized model's LayerNorm and bias (floats, exactly what the fold wrote) and the float model's
 * weights times the factors read back from the two LayerNorms (vitq_i_repq_unfold_factors); its
 * logits equal the float model's up to float rounding. LayerNorm -> linear pairs: norm1 -> qkv,
 * norm2 -> fc1, Swin's merge_norm -> merge, and the final norm -> pre_logits or the classifier(s).
 * Where nothing was folded the aligned network shares the float network's arrays. It borrows from
 * ref and qm (both must outlive it); free it with vitq_i_report_reference_free. */
vitq_status vitq_i_report_reference(const vitq_allocator *a, const vitq_i_net *ref, const vitq_i_net *qm,
                                    vitq_i_net *aligned);
void vitq_i_report_reference_free(const vitq_allocator *a, const vitq_i_net *ref, vitq_i_net *aligned);

#endif
