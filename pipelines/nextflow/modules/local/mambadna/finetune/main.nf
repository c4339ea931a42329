process MAMBADNA_FINETUNE {
    tag "$meta.id"
    label 'process_high'
    label 'process_gpu'

    conda "${moduleDir}/environment.yml"
    // built from the repository's Dockerfile; the gpu profile swaps in Dockerfile.cuda's image
    container "mambadna:0.1.0"

    input:
    tuple val(meta), path(model)
    tuple val(meta2), path(genomes)

    output:
    tuple val(meta), path("${prefix}.safetensors")      , emit: model
    tuple val(meta), path("${prefix}.epochs.tsv")       , emit: metrics
    tuple val(meta), path("${prefix}.epochs.svg")       , emit: plot
    tuple val(meta), path("${prefix}.*-confusion.tsv")  , emit: confusion
    tuple val(meta), path("${prefix}.*-confusion.svg")  , emit: confusion_plot
    path "versions.yml"                                 , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    prefix = task.ext.prefix ?: "${meta.id}"
    def device = task.accelerator?.request ? 'cuda' : 'cpu'
    // one label per genome file: its name up to the first dot (human.fa.gz -> human)
    """
    species=()
    for genome in $genomes; do
        species+=("\${genome%%.*}=\$genome")
    done
    mambadna finetune \\
        -i $model \\
        $args \\
        -t $task.cpus \\
        -x $device \\
        -o ${prefix}.safetensors \\
        "\${species[@]}"

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        mambadna: \$(mambadna --version | sed 's/^mambadna //')
    END_VERSIONS
    """

    stub:
    def args = task.ext.args ?: ''
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    touch ${prefix}.safetensors
    touch ${prefix}.epochs.tsv ${prefix}.epochs.svg
    touch ${prefix}.val-confusion.tsv ${prefix}.val-confusion.svg
    touch ${prefix}.test-confusion.tsv ${prefix}.test-confusion.svg

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        mambadna: \$(mambadna --version | sed 's/^mambadna //')
    END_VERSIONS
    """
}
